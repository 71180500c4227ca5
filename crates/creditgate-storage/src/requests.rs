//! Request receipts, read back from typed rows: the hold placed at admission, the charge posted
//! at settlement and the usage record written with it.

use creditgate_core::clock::Timestamp;
use creditgate_core::ids::{OrganizationId, TransferId};
use creditgate_core::ledger::{HoldResolution, LedgerError, LedgerResult, Settlement};
use creditgate_core::money::NanoCredits;
use creditgate_core::receipt::{ChargeFacts, Receipt};
use creditgate_core::usage::Admission;

use crate::statement::{Columns, Param};
use crate::usage::{record_columns, record_from_row};
use crate::Database;

/// Column where the usage record's columns start in the receipt query.
const RECORD_AT: usize = 8;

/// Maps the row of the receipt query below.
fn receipt_row(row: &dyn Columns) -> LedgerResult<Receipt> {
    let corrupt =
        |what: &str| LedgerError::Corrupt(format!("stored receipt has an invalid {what}"));
    // The ledger's own stored result of the settle: what was held, charged and drawn.
    let charge = match (row.opt_int(3)?, row.opt_text(4)?) {
        (Some(at), Some(result)) => {
            let s: Settlement = serde_json::from_str(&result).map_err(|_| corrupt("settlement"))?;
            Some(ChargeFacts {
                at: Timestamp::from_millis(at),
                held: s.held,
                charged: s.charged,
                overrun: s.overrun,
                late: s.late,
                lots: s.draws,
            })
        }
        _ => None,
    };
    let resolution = match row.opt_text(5)? {
        Some(r) => Some(HoldResolution::parse(&r).ok_or_else(|| corrupt("resolution"))?),
        None => None,
    };
    // An admission memo that is not ours (a hold placed by another caller) just isn't shown.
    let admission = row
        .opt_text(1)?
        .and_then(|m| serde_json::from_str::<Admission>(&m).ok());
    Ok(Receipt {
        id: TransferId::parse(&row.text(6)?).map_err(|_| corrupt("id"))?,
        org: OrganizationId::parse(&row.text(7)?).map_err(|_| corrupt("organization"))?,
        admission,
        created_at: Timestamp::from_millis(row.int(2)?),
        held: NanoCredits::from_nanos(row.int(0)?),
        resolution,
        charge,
        record: record_from_row(row, RECORD_AT)?,
    })
}

impl Database {
    /// The unresolved holds whose ids start with `prefix` (a gateway replica's credit leases,
    /// `lease:<replica>:`), in id order.
    pub async fn active_holds_with_prefix(&self, prefix: &str) -> LedgerResult<Vec<TransferId>> {
        // A range on the key, the same on both databases: every id that starts with the prefix
        // sorts at or after it and before the prefix with its last character raised.
        let mut end = prefix.to_owned();
        let last = end.pop().ok_or_else(|| {
            LedgerError::InvalidRequest("a hold prefix must not be empty".to_owned())
        })?;
        let raised = char::from_u32(last as u32 + 1).ok_or_else(|| {
            LedgerError::InvalidRequest(
                "a hold prefix must end in an ordinary character".to_owned(),
            )
        })?;
        end.push(raised);
        self.query(
            "SELECT hold FROM active_holds WHERE hold >= $1 AND hold < $2 ORDER BY hold",
            vec![Param::Text(prefix.to_owned()), Param::Text(end)],
            |row| {
                TransferId::parse(&row.text(0)?)
                    .map_err(|e| LedgerError::Corrupt(format!("stored hold id: {e}")))
            },
        )
        .await
    }

    /// The receipt of one request of one organization (another organization's id is `None`).
    pub async fn receipt(
        &self,
        org: &OrganizationId,
        id: &TransferId,
    ) -> LedgerResult<Option<Receipt>> {
        const SQL: &str = concat!(
            "SELECT CAST(h.amount + COALESCE((SELECT SUM(e.amount) FROM hold_extensions e \
                                               WHERE e.hold = h.id), 0) AS BIGINT), \
                    t.memo, h.created_at, c.at, s.result, r.resolution, h.id, h.org, ",
            record_columns!(),
            " FROM holds h \
             JOIN transfers t ON t.id = h.id \
             LEFT JOIN charges c ON c.hold = h.id \
             LEFT JOIN transfers s ON s.id = c.transfer_id \
             LEFT JOIN hold_resolutions r ON r.hold = h.id \
             LEFT JOIN usage_records u ON u.request_id = h.id \
             WHERE h.id = $1 AND h.org = $2"
        );
        self.query_opt(
            SQL,
            vec![Param::Text(id.to_string()), Param::Text(org.to_string())],
            receipt_row,
        )
        .await
    }
}
