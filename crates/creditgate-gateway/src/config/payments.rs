//! The `[payments]` section: which provider takes the money, who the seller is (for receipts),
//! which countries are served, the custom amount, and the Stripe account; and the `[tax]`
//! section (rates by billing country, `docs/tax.md`), kept beside them.

use std::collections::BTreeMap;
use std::fmt;

use creditgate_core::payments::tax::TaxTable;
use creditgate_core::pricing::{CreditPlans, CustomAmount};
use serde::Deserialize;

use super::ConfigError;

/// Stripe's API, unless a test points elsewhere.
pub const DEFAULT_STRIPE_API_BASE: &str = "https://api.stripe.com";
/// How often open orders are re-checked with their provider.
pub const DEFAULT_RECONCILE_INTERVAL_MS: u64 = 5 * 60 * 1000;
/// How long one call to Stripe may take.
pub const STRIPE_TIMEOUT_MS: u64 = 30_000;

/// Which provider new checkouts go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutProvider {
    Sandbox,
    Stripe,
}

/// The seller, as printed on receipts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seller {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub address: Vec<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub tax_id: Option<String>,
}

/// The Stripe account.
#[derive(Clone)]
pub struct StripeConfig {
    pub api_base: String,
    pub secret_key: String,
    /// Several during a secret roll; an event signed with any of them is accepted.
    pub webhook_secrets: Vec<String>,
}

impl fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeConfig")
            .field("api_base", &self.api_base)
            .field("secret_key", &"<redacted>")
            .field(
                "webhook_secrets",
                &format!("<{} redacted>", self.webhook_secrets.len()),
            )
            .finish()
    }
}

/// The validated `[payments]` section.
#[derive(Debug, Clone)]
pub struct PaymentsConfig {
    pub provider: CheckoutProvider,
    /// The address customers reach this server at, for checkout and receipt links.
    pub public_url: Option<String>,
    /// ISO codes; empty means every country.
    pub served_countries: Vec<String>,
    pub seller: Seller,
    pub custom: Option<CustomAmount>,
    pub stripe: Option<StripeConfig>,
    pub reconcile_interval_ms: u64,
    /// Tax rates by billing country (`[tax]`); the seller's tax id is `seller.tax_id`.
    pub tax: TaxTable,
}

/// The `[tax]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTax {
    rates: Option<BTreeMap<String, String>>,
    prices_include_tax: Option<bool>,
}

/// Reads `[tax]`, `CREDITGATE_TAX_RATES` (`FR=0.20,DE=0.19`) and
/// `CREDITGATE_TAX_PRICES_INCLUDE_TAX` (`true`/`false`), refusing a bad country or rate.
fn tax_table(raw: RawTax, env: &impl Fn(&str) -> Option<String>) -> Result<TaxTable, ConfigError> {
    let invalid = |m: String| ConfigError::Invalid(format!("tax.{m}"));
    let rates: Vec<(String, String)> = match env("CREDITGATE_TAX_RATES") {
        Some(v) => v
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| match p.split_once('=') {
                Some((c, r)) => Ok((c.trim().to_owned(), r.trim().to_owned())),
                None => Err(invalid(format!(
                    "rates: `{p}` must be COUNTRY=RATE such as FR=0.20"
                ))),
            })
            .collect::<Result<_, _>>()?,
        None => raw.rates.unwrap_or_default().into_iter().collect(),
    };
    let include = match env("CREDITGATE_TAX_PRICES_INCLUDE_TAX").as_deref() {
        None => raw.prices_include_tax.unwrap_or(false),
        Some("true") => true,
        Some("false") => false,
        Some(_) => return Err(invalid("prices_include_tax must be true or false".into())),
    };
    TaxTable::new(rates, include).map_err(|e| invalid(format!("rates: {e}")))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPayments {
    provider: Option<String>,
    public_url: Option<String>,
    served_countries: Option<Vec<String>>,
    #[serde(default)]
    seller: Seller,
    custom: Option<toml::Value>,
    reconcile_interval_ms: Option<u64>,
    #[serde(default)]
    stripe: RawStripe,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStripe {
    api_base: Option<String>,
    secret_key: Option<String>,
    webhook_secrets: Option<Vec<String>>,
}

impl PaymentsConfig {
    pub(super) fn from_raw(
        raw: RawPayments,
        raw_tax: RawTax,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let invalid = |m: &str| ConfigError::Invalid(format!("payments.{m}"));
        let provider = match env("CREDITGATE_PAYMENTS_PROVIDER")
            .or(raw.provider)
            .as_deref()
        {
            None | Some("sandbox") => CheckoutProvider::Sandbox,
            Some("stripe") => CheckoutProvider::Stripe,
            Some(_) => return Err(invalid("provider must be sandbox or stripe")),
        };
        let stripe = stripe_config(raw.stripe, env)?;
        if provider == CheckoutProvider::Stripe && stripe.is_none() {
            return Err(invalid(
                "provider = \"stripe\" needs [payments.stripe] secret_key and webhook_secrets",
            ));
        }
        let served_countries = raw.served_countries.unwrap_or_default();
        if served_countries
            .iter()
            .any(|c| c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()))
        {
            return Err(invalid("served_countries must be ISO codes such as \"FR\""));
        }
        let custom = match raw.custom {
            None => None,
            Some(table) => {
                let text = format!("[custom]\n{}", toml::to_string(&table).unwrap_or_default());
                let plans =
                    CreditPlans::from_toml(&text).map_err(|e| invalid(&format!("custom: {e}")))?;
                plans.custom().cloned()
            }
        };
        let public_url = env("CREDITGATE_PUBLIC_URL")
            .or(raw.public_url)
            .map(|u| u.trim_end_matches('/').to_owned());
        Ok(Self {
            provider,
            public_url,
            served_countries,
            seller: raw.seller,
            custom,
            stripe,
            reconcile_interval_ms: raw
                .reconcile_interval_ms
                .unwrap_or(DEFAULT_RECONCILE_INTERVAL_MS),
            tax: tax_table(raw_tax, env)?,
        })
    }
}

fn stripe_config(
    raw: RawStripe,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<StripeConfig>, ConfigError> {
    let secret_key = env("CREDITGATE_STRIPE_SECRET_KEY").or(raw.secret_key);
    let webhook_secrets = match env("CREDITGATE_STRIPE_WEBHOOK_SECRETS") {
        Some(v) => v.split(',').map(|s| s.trim().to_owned()).collect(),
        None => raw.webhook_secrets.unwrap_or_default(),
    };
    let Some(secret_key) = secret_key else {
        return Ok(None);
    };
    if webhook_secrets.is_empty() || webhook_secrets.iter().any(|s| s.is_empty()) {
        return Err(ConfigError::Invalid(
            "payments.stripe.webhook_secrets must list the endpoint's signing secret(s)".into(),
        ));
    }
    let api_base = env("CREDITGATE_STRIPE_API_BASE")
        .or(raw.api_base)
        .unwrap_or_else(|| DEFAULT_STRIPE_API_BASE.to_owned())
        .trim_end_matches('/')
        .to_owned();
    if !(api_base.starts_with("http://") || api_base.starts_with("https://")) {
        return Err(ConfigError::Invalid(
            "payments.stripe.api_base must start with http:// or https://".into(),
        ));
    }
    Ok(Some(StripeConfig {
        api_base,
        secret_key,
        webhook_secrets,
    }))
}
