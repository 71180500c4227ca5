//! The statement of account (`creditgate_core::statement`), read from the journal: every entry
//! of the organization that touches one of its balance accounts (its lots and its overdraft
//! account) moves the balance by its amount, in or out. Summed per transfer, with the lot and
//! order the transfer created naming its kind; charges summed per UTC day.

use creditgate_core::clock::Timestamp;
use creditgate_core::ids::OrganizationId;
use creditgate_core::ledger::{account, LedgerResult};
use creditgate_core::money::NanoCredits;
use creditgate_core::statement::{self, LineKind, Movement, Statement, UsageDay, DAY_MS};

use crate::journal::ops::kind;
use crate::statement::Param;
use crate::Database;

/// The net effect of an entry `e` on the balance of the organization whose overdraft account
/// is `$2`: credited to one of its accounts, in; debited from one, out.
macro_rules! balance_delta {
    () => {
        "(CASE WHEN e.credit LIKE 'lot:%' OR e.credit = $2 THEN e.amount ELSE 0 END \
         - CASE WHEN e.debit LIKE 'lot:%' OR e.debit = $2 THEN e.amount ELSE 0 END)"
    };
}

const OPENING: &str = concat!(
    "SELECT CAST(COALESCE(SUM(",
    balance_delta!(),
    "), 0) AS BIGINT) FROM entries e WHERE e.org = $1 AND e.at < $3"
);

/// Every transfer but charges in the period, with the source of the lot it created and the
/// order that lot belongs to.
const MOVEMENTS: &str = concat!(
    "SELECT g.transfer_id, g.kind, g.at, g.delta, \
     (SELECT l.source FROM lots l WHERE l.org = $1 AND l.transfer_id = g.transfer_id \
      ORDER BY l.id LIMIT 1), \
     (SELECT o.id FROM lots l JOIN orders o ON o.lot_id = l.id \
      WHERE l.org = $1 AND l.transfer_id = g.transfer_id ORDER BY o.id LIMIT 1) \
     FROM (SELECT e.transfer_id AS transfer_id, t.kind AS kind, MIN(e.at) AS at, \
           MIN(e.seq) AS seq, CAST(SUM(",
    balance_delta!(),
    ") AS BIGINT) AS delta \
           FROM entries e JOIN transfers t ON t.id = e.transfer_id \
           WHERE e.org = $1 AND e.at >= $3 AND e.at < $4 AND t.kind <> 'settle' \
           GROUP BY e.transfer_id, t.kind) g \
     ORDER BY g.seq"
);

/// Charges in the period per UTC day: their net effect and how many there were.
const USAGE: &str = concat!(
    "SELECT e.at / 86400000, CAST(SUM(",
    balance_delta!(),
    ") AS BIGINT), COUNT(DISTINCT e.transfer_id) \
     FROM entries e JOIN transfers t ON t.id = e.transfer_id \
     WHERE e.org = $1 AND e.at >= $3 AND e.at < $4 AND t.kind = 'settle' \
     GROUP BY e.at / 86400000 ORDER BY 1"
);

/// The line kind of a transfer other than a charge.
fn kind_of(transfer_kind: &str, lot_source: Option<&str>, order: Option<&str>) -> LineKind {
    match (transfer_kind, lot_source, order) {
        // An invoice paid through a provider has an order too; it is still the invoice's credit.
        (kind::GRANT, Some("invoice"), _) => LineKind::Invoice,
        (kind::GRANT, _, Some(_)) => LineKind::Purchase,
        (kind::GRANT, _, None) => LineKind::Grant,
        (kind::REFUND | kind::CLAW_BACK, _, _) => LineKind::Refund,
        (kind::EXPIRE_LOT, _, _) => LineKind::Expiry,
        _ => LineKind::Adjustment,
    }
}

impl Database {
    /// The organization's statement for `[from, to)`.
    pub async fn statement(
        &self,
        org: &OrganizationId,
        from: Timestamp,
        to: Timestamp,
    ) -> LedgerResult<Statement> {
        let head = vec![
            Param::Text(org.to_string()),
            Param::Text(account::overdraft(org)),
            Param::Int(from.millis()),
        ];
        let mut window = head.clone();
        window.push(Param::Int(to.millis()));
        let opening = self
            .query(OPENING, head, |row| row.nanos(0))
            .await?
            .pop()
            .unwrap_or(NanoCredits::ZERO);
        let movements = self
            .query(MOVEMENTS, window.clone(), |row| {
                let transfer = row.text(0)?;
                let order = row.opt_text(5)?;
                let kind = kind_of(&row.text(1)?, row.opt_text(4)?.as_deref(), order.as_deref());
                Ok(Movement {
                    at: row.millis(2)?,
                    kind,
                    credits: row.nanos(3)?,
                    reference: order.unwrap_or(transfer),
                })
            })
            .await?;
        let usage = self
            .query(USAGE, window, |row| {
                Ok(UsageDay {
                    day: Timestamp::from_millis(row.int(0)? * DAY_MS),
                    credits: row.nanos(1)?,
                    requests: row.int(2)?,
                })
            })
            .await?;
        Ok(statement::build(from, to, opening, movements, usage)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_are_named_by_kind_lot_and_order() {
        assert_eq!(
            kind_of("grant", Some("purchase"), Some("ord_1")),
            LineKind::Purchase
        );
        assert_eq!(kind_of("grant", Some("invoice"), None), LineKind::Invoice);
        assert_eq!(
            kind_of("grant", Some("invoice"), Some("ord_2")),
            LineKind::Invoice
        );
        assert_eq!(kind_of("grant", Some("promotion"), None), LineKind::Grant);
        assert_eq!(kind_of("claw_back", None, None), LineKind::Refund);
        assert_eq!(kind_of("expire_lot", None, None), LineKind::Expiry);
        assert_eq!(kind_of("adjust", None, None), LineKind::Adjustment);
    }
}
