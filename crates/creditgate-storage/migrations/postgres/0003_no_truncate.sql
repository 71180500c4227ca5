-- TRUNCATE skips row triggers: refuse it on every append-only journal table, not only on
-- transfers and entries (0001).
CREATE TRIGGER lots_no_truncate BEFORE TRUNCATE ON lots
    FOR EACH STATEMENT EXECUTE FUNCTION creditgate_append_only();
CREATE TRIGGER holds_no_truncate BEFORE TRUNCATE ON holds
    FOR EACH STATEMENT EXECUTE FUNCTION creditgate_append_only();
CREATE TRIGGER hold_extensions_no_truncate BEFORE TRUNCATE ON hold_extensions
    FOR EACH STATEMENT EXECUTE FUNCTION creditgate_append_only();
CREATE TRIGGER hold_resolutions_no_truncate BEFORE TRUNCATE ON hold_resolutions
    FOR EACH STATEMENT EXECUTE FUNCTION creditgate_append_only();
CREATE TRIGGER charges_no_truncate BEFORE TRUNCATE ON charges
    FOR EACH STATEMENT EXECUTE FUNCTION creditgate_append_only();
CREATE TRIGGER lot_refunds_no_truncate BEFORE TRUNCATE ON lot_refunds
    FOR EACH STATEMENT EXECUTE FUNCTION creditgate_append_only();
