"""indexes and full-text search for the admin logs dashboard (issue: web UI)

Every filter of the dashboard has an index that starts with (org_id, filter column) and
ends with (created_at, id), so "newest first" keyset pages are a range scan whatever the
filter; the two numeric sorts (tokens, cost) have (org_id, column, id) indexes.

Full-text search over the input and output of a call:
- SQLite: an FTS5 table `audit_fts` filled by triggers (the writer stays a plain insert).
  It keeps the log id as an unindexed column rather than relying on rowids, which VACUUM
  may renumber in a table without an INTEGER PRIMARY KEY.
- PostgreSQL: a GIN index over the same text as a `simple` tsvector (no stemming, so
  Korean and English words match as written).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

FILTER_INDEXES = {
    "ix_audit_org_app_created": "app_id",
    "ix_audit_org_model_created": "model_used",
    "ix_audit_org_status_created": "status",
    "ix_audit_org_user_created": "user_id",
    "ix_audit_org_team_created": "team_id",
}
SORT_INDEXES = {"ix_audit_org_tokens": "total_tokens", "ix_audit_org_cost": "cost_usd"}

# The searchable text of one audit row: the content of its input messages and its output.
_SQLITE_BODY = (
    "coalesce((SELECT group_concat(json_extract(m.value, '$.content'), ' ') "
    "FROM json_each(CASE WHEN json_valid({row}.input_messages) THEN {row}.input_messages ELSE '[]' END) AS m), '')"
    " || ' ' || coalesce({row}.output_text, '')"
)
PG_TSVECTOR = "to_tsvector('simple', coalesce(output_text, '') || ' ' || coalesce(input_messages::jsonb::text, ''))"


def upgrade() -> None:
    for name, column in FILTER_INDEXES.items():
        op.create_index(name, "audit_logs", ["org_id", column, "created_at", "id"])
    for name, column in SORT_INDEXES.items():
        op.create_index(name, "audit_logs", ["org_id", column, "id"])
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE VIRTUAL TABLE audit_fts USING fts5(log_id UNINDEXED, body, tokenize='unicode61')")
        op.execute(
            "CREATE TRIGGER audit_fts_insert AFTER INSERT ON audit_logs BEGIN "
            f"INSERT INTO audit_fts(log_id, body) VALUES (new.id, {_SQLITE_BODY.format(row='new')}); END"
        )
        op.execute(
            "CREATE TRIGGER audit_fts_delete AFTER DELETE ON audit_logs BEGIN "
            "DELETE FROM audit_fts WHERE log_id = old.id; END"
        )
        op.execute(
            f"INSERT INTO audit_fts(log_id, body) SELECT id, {_SQLITE_BODY.format(row='audit_logs')} FROM audit_logs"
        )
    else:
        op.execute(f"CREATE INDEX ix_audit_fulltext ON audit_logs USING gin ({PG_TSVECTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_fts_delete")
        op.execute("DROP TRIGGER IF EXISTS audit_fts_insert")
        op.execute("DROP TABLE IF EXISTS audit_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_audit_fulltext")
    for name in (*SORT_INDEXES, *FILTER_INDEXES):
        op.drop_index(name, table_name="audit_logs")
