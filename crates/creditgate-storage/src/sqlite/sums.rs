//! Upserts that add numbers to a row ([`TxStatements::defer_sum`]), summed over the writer's
//! commit group and written once per row just before the group commits.
//!
//! Every settlement adds its usage to three rollup rows (minute, hour, day); under load the
//! operations of one group mostly add to the same rows, so the group writes each row once
//! instead of once per operation. An operation's additions join the group's only when the
//! operation succeeded (its savepoint was kept), and they are written inside the same
//! transaction, so they commit or roll back with the usage records they describe. If writing a
//! row fails (a sum past `i64`, which no real usage reaches), the whole group rolls back and every
//! operation in it gets that error, as when the group's `COMMIT` fails.
//!
//! [`TxStatements::defer_sum`]: crate::statement::TxStatements::defer_sum

use std::cell::RefCell;
use std::collections::HashMap;

use creditgate_core::ledger::{LedgerError, LedgerResult};
use creditgate_core::money::MoneyError;
use rusqlite::Connection;

use crate::statement::{sqlite_error, sqlite_sql, Param};

/// A key parameter in a form that can be hashed.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Part {
    Int(Option<i64>),
    Bool(bool),
    Text(Option<String>),
}

impl From<&Param> for Part {
    fn from(p: &Param) -> Self {
        match p {
            Param::Int(v) => Part::Int(Some(*v)),
            Param::OptInt(v) => Part::Int(*v),
            Param::Bool(v) => Part::Bool(*v),
            Param::Text(v) => Part::Text(Some(v.clone())),
            Param::OptText(v) => Part::Text(v.clone()),
        }
    }
}

/// One row's additions: the statement, the parameters naming the row, the summed numbers.
struct Row {
    sql: &'static str,
    key: Vec<Param>,
    values: Vec<i64>,
}

/// Additions by statement and row, in the order the rows were first added to.
#[derive(Default)]
struct Sums {
    index: HashMap<(usize, Vec<Part>), usize>,
    rows: Vec<Row>,
}

impl Sums {
    fn add(
        &mut self,
        sql: &'static str,
        mut key: Vec<Param>,
        values: Vec<i64>,
    ) -> LedgerResult<()> {
        let id = (sql.as_ptr() as usize, key.iter().map(Part::from).collect());
        match self.index.get(&id) {
            Some(&i) => {
                let row = &mut self.rows[i];
                if row.values.len() != values.len() {
                    return Err(LedgerError::Corrupt(format!(
                        "summed upsert with {} values, then {}",
                        row.values.len(),
                        values.len()
                    )));
                }
                for (sum, v) in row.values.iter_mut().zip(values) {
                    *sum = sum.checked_add(v).ok_or(MoneyError::Overflow)?;
                }
            }
            None => {
                self.index.insert(id, self.rows.len());
                key.shrink_to_fit();
                self.rows.push(Row { sql, key, values });
            }
        }
        Ok(())
    }

    fn merge(&mut self, other: Sums) -> LedgerResult<()> {
        for row in other.rows {
            self.add(row.sql, row.key, row.values)?;
        }
        Ok(())
    }

    fn write(self, conn: &Connection) -> LedgerResult<()> {
        for row in self.rows {
            let mut st = conn
                .prepare_cached(sqlite_sql(row.sql))
                .map_err(sqlite_error)?;
            let params = row
                .key
                .into_iter()
                .chain(row.values.into_iter().map(Param::Int));
            st.execute(rusqlite::params_from_iter(params))
                .map_err(sqlite_error)?;
        }
        Ok(())
    }
}

/// The sums of the group being run on this thread: the group's so far, and the running
/// operation's apart.
struct Group {
    kept: Sums,
    op: Sums,
}

thread_local! {
    /// Set while the writer runs a group on this thread; `None` anywhere else.
    static GROUP: RefCell<Option<Group>> = const { RefCell::new(None) };
}

/// Adds `params` (the first `key` name the row, the rest are integers to add) to the running
/// operation's sums. `Err` hands `params` back when no group is being run on this thread: the
/// caller runs the statement itself.
pub(crate) fn add(
    sql: &'static str,
    key: usize,
    mut params: Vec<Param>,
) -> Result<LedgerResult<()>, Vec<Param>> {
    GROUP.with_borrow_mut(|group| {
        let Some(group) = group.as_mut() else {
            return Err(params);
        };
        if key > params.len() {
            return Ok(Err(LedgerError::Corrupt(format!(
                "a summed upsert's key of {key} parameters has only {}",
                params.len()
            ))));
        }
        let values = params.split_off(key);
        let values: LedgerResult<Vec<i64>> = values
            .into_iter()
            .map(|p| match p {
                Param::Int(v) => Ok(v),
                other => Err(LedgerError::Corrupt(format!(
                    "a summed upsert adds integers, not {other:?}"
                ))),
            })
            .collect();
        Ok(values.and_then(|values| group.op.add(sql, params, values)))
    })
}

/// Starts collecting a group's sums on this thread.
pub(crate) fn begin_group() {
    GROUP.set(Some(Group {
        kept: Sums::default(),
        op: Sums::default(),
    }));
}

/// Ends the running operation: its sums join the group's if it `succeeded`, else they are
/// dropped with the rest of what it wrote.
pub(crate) fn end_op(succeeded: bool) -> LedgerResult<()> {
    GROUP.with_borrow_mut(|group| match group {
        Some(g) => {
            let op = std::mem::take(&mut g.op);
            if succeeded {
                g.kept.merge(op)
            } else {
                Ok(())
            }
        }
        None => Ok(()),
    })
}

/// Ends the group on this thread and writes its sums, one statement per row, inside the
/// group's still-open transaction.
pub(crate) fn write_group(conn: &Connection) -> LedgerResult<()> {
    match GROUP.take() {
        Some(g) => g.kept.write(conn),
        None => Ok(()),
    }
}

/// Ends the group on this thread without writing its sums (the group rolled back).
pub(crate) fn drop_group() {
    GROUP.set(None);
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADD: &str = "INSERT INTO t (k, n, m) VALUES ($1, $2, $3)
                       ON CONFLICT (k) DO UPDATE SET n = t.n + excluded.n, m = t.m + excluded.m";

    fn table() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER, m INTEGER)")
            .unwrap();
        conn
    }

    fn row(conn: &Connection, k: &str) -> Option<(i64, i64)> {
        conn.query_row("SELECT n, m FROM t WHERE k = ?1", [k], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .ok()
    }

    fn add_one(k: &str, n: i64, m: i64) -> Result<LedgerResult<()>, Vec<Param>> {
        add(
            ADD,
            1,
            vec![Param::Text(k.into()), Param::Int(n), Param::Int(m)],
        )
    }

    #[test]
    fn a_group_writes_each_row_once_with_the_sums_of_its_successful_operations() {
        let conn = table();
        begin_group();
        add_one("a", 1, 10).unwrap().unwrap();
        add_one("b", 2, 20).unwrap().unwrap();
        end_op(true).unwrap();
        // A failed operation's additions go with it.
        add_one("a", 100, 1000).unwrap().unwrap();
        add_one("c", 5, 5).unwrap().unwrap();
        end_op(false).unwrap();
        add_one("a", 3, 30).unwrap().unwrap();
        end_op(true).unwrap();
        write_group(&conn).unwrap();
        assert_eq!(row(&conn, "a"), Some((4, 40)));
        assert_eq!(row(&conn, "b"), Some((2, 20)));
        assert_eq!(row(&conn, "c"), None);
        // Outside a group the caller runs the statement itself.
        assert!(add_one("a", 1, 1).is_err());
    }

    #[test]
    fn a_dropped_group_writes_nothing_and_bad_additions_are_refused() {
        let conn = table();
        begin_group();
        add_one("a", 1, 1).unwrap().unwrap();
        end_op(true).unwrap();
        drop_group();
        write_group(&conn).unwrap();
        assert_eq!(row(&conn, "a"), None);

        begin_group();
        let text = add(
            ADD,
            1,
            vec![Param::Text("a".into()), Param::Text("x".into())],
        );
        assert!(text.unwrap().is_err());
        assert!(add(ADD, 4, vec![Param::Int(1)]).unwrap().is_err());
        add_one("a", i64::MAX, 0).unwrap().unwrap();
        end_op(true).unwrap();
        add_one("a", 1, 0).unwrap().unwrap();
        assert!(end_op(true).is_err(), "the sum overflows");
        drop_group();
    }
}
