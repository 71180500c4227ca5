//! Stripe's test cards and what each does, shared by the sandbox provider and the fake Stripe
//! so both answer a card the same way (`docs/payments.md`).

use super::FailureCode;

/// How a test card behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardBehavior {
    Succeeds,
    Declined,
    InsufficientFunds,
    /// On-session: an extra confirm step; off-session: fails `authentication_required`.
    RequiresAuthentication,
    /// Can be saved, but every charge is declined.
    ChargesDeclined,
    /// The charge succeeds, then the cardholder disputes it.
    SucceedsThenDisputed,
}

/// A card from the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestCard {
    pub number: &'static str,
    pub brand: &'static str,
    pub behavior: CardBehavior,
}

/// Stripe's documented test numbers that creditgate supports.
pub const TEST_CARDS: &[TestCard] = &[
    card("4242424242424242", CardBehavior::Succeeds),
    card("4000000000000002", CardBehavior::Declined),
    card("4000000000009995", CardBehavior::InsufficientFunds),
    card("4000002760003184", CardBehavior::RequiresAuthentication),
    card("4000000000000341", CardBehavior::ChargesDeclined),
    card("4000000000000259", CardBehavior::SucceedsThenDisputed),
];

const fn card(number: &'static str, behavior: CardBehavior) -> TestCard {
    TestCard {
        number,
        brand: "visa",
        behavior,
    }
}

/// The result of charging a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeOutcome {
    Succeeded,
    /// Succeeded, and a dispute follows.
    SucceededThenDisputed,
    /// On-session only: the customer must confirm once more.
    NeedsConfirmation,
    Failed(FailureCode),
}

impl TestCard {
    /// Finds a card by number; spaces and dashes are ignored.
    pub fn lookup(number: &str) -> Option<&'static TestCard> {
        let digits: String = number.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        TEST_CARDS.iter().find(|c| c.number == digits)
    }

    /// What the sandbox keeps for a saved card instead of its number: `sbxcard_<last four>`
    /// (the table's last four digits are unique).
    pub fn token(&self) -> String {
        format!("sbxcard_{}", self.last4())
    }

    /// The card a sandbox token stands for.
    pub fn by_token(token: &str) -> Option<&'static TestCard> {
        let last4 = token.strip_prefix("sbxcard_")?;
        TEST_CARDS.iter().find(|c| c.last4() == last4)
    }

    pub fn last4(&self) -> &'static str {
        &self.number[self.number.len() - 4..]
    }

    /// "visa •••• 4242", as an order shows how it was paid.
    pub fn describe(&self) -> String {
        format!("{} •••• {}", self.brand, self.last4())
    }

    /// Charges the card. `on_session`: the customer is at the checkout page; `confirmed`: they
    /// passed the extra authentication step.
    pub fn charge(&self, on_session: bool, confirmed: bool) -> ChargeOutcome {
        match self.behavior {
            CardBehavior::Succeeds => ChargeOutcome::Succeeded,
            CardBehavior::SucceedsThenDisputed => ChargeOutcome::SucceededThenDisputed,
            CardBehavior::Declined | CardBehavior::ChargesDeclined => {
                ChargeOutcome::Failed(FailureCode::CardDeclined)
            }
            CardBehavior::InsufficientFunds => {
                ChargeOutcome::Failed(FailureCode::InsufficientFunds)
            }
            CardBehavior::RequiresAuthentication if !on_session => {
                ChargeOutcome::Failed(FailureCode::AuthenticationRequired)
            }
            CardBehavior::RequiresAuthentication if confirmed => ChargeOutcome::Succeeded,
            CardBehavior::RequiresAuthentication => ChargeOutcome::NeedsConfirmation,
        }
    }

    /// Whether the card can be saved for later (auto-reload).
    pub fn can_save(&self) -> bool {
        !matches!(
            self.behavior,
            CardBehavior::Declined | CardBehavior::InsufficientFunds
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_answers_like_stripe() {
        let outcome = |n: &str, on: bool| TestCard::lookup(n).unwrap().charge(on, false);
        assert_eq!(
            outcome("4242 4242 4242 4242", true),
            ChargeOutcome::Succeeded
        );
        assert_eq!(
            outcome("4000000000000002", true),
            ChargeOutcome::Failed(FailureCode::CardDeclined)
        );
        assert_eq!(
            outcome("4000-0000-0000-9995", true),
            ChargeOutcome::Failed(FailureCode::InsufficientFunds)
        );
        assert_eq!(
            outcome("4000002760003184", true),
            ChargeOutcome::NeedsConfirmation
        );
        assert_eq!(
            TestCard::lookup("4000002760003184")
                .unwrap()
                .charge(true, true),
            ChargeOutcome::Succeeded
        );
        assert_eq!(
            outcome("4000002760003184", false),
            ChargeOutcome::Failed(FailureCode::AuthenticationRequired)
        );
        let saves_only = TestCard::lookup("4000000000000341").unwrap();
        assert!(saves_only.can_save());
        assert_eq!(
            saves_only.charge(false, false),
            ChargeOutcome::Failed(FailureCode::CardDeclined)
        );
        assert_eq!(
            outcome("4000000000000259", true),
            ChargeOutcome::SucceededThenDisputed
        );
        assert!(TestCard::lookup("4111111111111111").is_none());
        for c in TEST_CARDS {
            assert_eq!(
                TestCard::by_token(&c.token()),
                Some(c),
                "last fours are unique"
            );
        }
        assert_eq!(
            TestCard::lookup("4242424242424242").unwrap().describe(),
            "visa •••• 4242"
        );
    }
}
