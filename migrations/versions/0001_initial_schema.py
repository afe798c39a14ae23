"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sat_storage.models

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "param_gen",
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("category", "name", name=op.f("pk_param_gen")),
    )
    op.create_table(
        "private_gen",
        sa.Column("namespace", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("namespace", "key", name=op.f("pk_private_gen")),
    )
    op.create_table(
        "private_gen_bin",
        sa.Column("namespace", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sat_storage.models.JSONValue(none_as_null=True), nullable=True),
        sa.PrimaryKeyConstraint("namespace", "key", name=op.f("pk_private_gen_bin")),
    )
    op.create_table(
        "profiles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profiles")),
        sa.UniqueConstraint("name", name=op.f("uq_profiles_name")),
    )
    op.create_table(
        "components",
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("entry_point", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_components_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("profile_id", name=op.f("pk_components")),
    )
    op.create_table(
        "files",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("public_id", sa.Text(), nullable=True),
        sa.Column("parent", sa.Text(), nullable=False),
        sa.Column(
            "type",
            sa.Enum(
                "file",
                "directory",
                name="file_type",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("file_hash", sa.Text(), nullable=True),
        sa.Column("hash_algo", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("namespace", sa.Text(), nullable=True),
        sa.Column("media_type", sa.Text(), nullable=True),
        sa.Column("media_subtype", sa.Text(), nullable=True),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("modified", sa.Float(), nullable=True),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("access", sat_storage.models.JSONValue(none_as_null=True), nullable=True),
        sa.Column("extra", sat_storage.models.JSONValue(none_as_null=True), nullable=True),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_files_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", "version", name=op.f("pk_files")),
        sa.UniqueConstraint("public_id", name=op.f("uq_files_public_id")),
    )
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.create_index(
            "files__profile_id_owner_media_type_media_subtype",
            ["profile_id", "owner", "media_type", "media_subtype"],
            unique=False,
        )
        batch_op.create_index(
            "files__profile_id_owner_parent", ["profile_id", "owner", "parent"], unique=False
        )

    op.create_table(
        "history",
        sa.Column("uid", sa.Text(), nullable=False),
        sa.Column("origin_id", sa.Text(), nullable=True),
        sa.Column("stanza_id", sa.Text(), nullable=True),
        sa.Column("update_uid", sa.Text(), nullable=True),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_res", sa.Text(), nullable=True),
        sa.Column("dest", sa.Text(), nullable=False),
        sa.Column("dest_res", sa.Text(), nullable=True),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.Column("received_timestamp", sa.Float(), nullable=True),
        sa.Column(
            "type",
            sa.Enum(
                "chat",
                "error",
                "groupchat",
                "headline",
                "normal",
                "info",
                name="message_type",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("extra", sat_storage.models.JSONValue(none_as_null=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_history_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("uid", name=op.f("pk_history")),
        sa.UniqueConstraint(
            "profile_id", "origin_id", "source", name=op.f("uq_history_profile_id_origin_id_source")
        ),
        sa.UniqueConstraint(
            "profile_id",
            "stanza_id",
            "source",
            "dest",
            name=op.f("uq_history_profile_id_stanza_id_source_dest"),
        ),
    )
    with op.batch_alter_table("history", schema=None) as batch_op:
        batch_op.create_index(
            "history__profile_id_received_timestamp",
            ["profile_id", "received_timestamp"],
            unique=False,
        )
        batch_op.create_index(
            "history__profile_id_timestamp", ["profile_id", "timestamp"], unique=False
        )

    op.create_table(
        "param_ind",
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_param_ind_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("category", "name", "profile_id", name=op.f("pk_param_ind")),
    )
    op.create_table(
        "private_ind",
        sa.Column("namespace", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_private_ind_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("namespace", "key", "profile_id", name=op.f("pk_private_ind")),
    )
    op.create_table(
        "private_ind_bin",
        sa.Column("namespace", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("value", sat_storage.models.JSONValue(none_as_null=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_private_ind_bin_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("namespace", "key", "profile_id", name=op.f("pk_private_ind_bin")),
    )
    op.create_table(
        "pubsub_nodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "subscribed", sa.Boolean(create_constraint=True, name="subscribed"), nullable=False
        ),
        sa.Column("analyser", sa.Text(), nullable=True),
        sa.Column(
            "sync_state",
            sa.Enum(
                "in_progress",
                "completed",
                "error",
                "no_sync",
                name="sync_state",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("sync_state_updated", sa.Float(), nullable=False),
        sa.Column("type", sa.Text(), nullable=True),
        sa.Column("subtype", sa.Text(), nullable=True),
        sa.Column("extra", sat_storage.models.JSONValue(none_as_null=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_pubsub_nodes_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pubsub_nodes")),
        sa.UniqueConstraint(
            "profile_id", "service", "name", name=op.f("uq_pubsub_nodes_profile_id_service_name")
        ),
    )
    with op.batch_alter_table("pubsub_nodes", schema=None) as batch_op:
        batch_op.create_index("pubsub_nodes__service_name", ["service", "name"], unique=False)
        batch_op.create_index("pubsub_nodes__sync_state", ["sync_state"], unique=False)

    op.create_table(
        "message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("history_uid", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("language", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["history_uid"],
            ["history.uid"],
            name=op.f("fk_message_history_uid_history"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message")),
    )
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.create_index("message__history_uid", ["history_uid"], unique=False)

    op.create_table(
        "pubsub_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("created", sat_storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated", sat_storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("parsed", sat_storage.models.JSONValue(none_as_null=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["pubsub_nodes.id"],
            name=op.f("fk_pubsub_items_node_id_pubsub_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pubsub_items")),
        sa.UniqueConstraint("node_id", "name", name=op.f("uq_pubsub_items_node_id_name")),
    )
    with op.batch_alter_table("pubsub_items", schema=None) as batch_op:
        batch_op.create_index("pubsub_items__created", ["created"], unique=False)
        batch_op.create_index("pubsub_items__node_id_id", ["node_id", "id"], unique=False)
        batch_op.create_index(
            "pubsub_items__node_id_updated_id", ["node_id", "updated", "id"], unique=False
        )
        batch_op.create_index("pubsub_items__updated", ["updated"], unique=False)

    op.create_table(
        "pubsub_subs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("subscriber", sa.Text(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "subscribed",
                "pending",
                name="subscription_state",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["pubsub_nodes.id"],
            name=op.f("fk_pubsub_subs_node_id_pubsub_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pubsub_subs")),
        sa.UniqueConstraint(
            "node_id", "subscriber", name=op.f("uq_pubsub_subs_node_id_subscriber")
        ),
    )
    op.create_table(
        "subject",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("history_uid", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("language", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["history_uid"],
            ["history.uid"],
            name=op.f("fk_subject_history_uid_history"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subject")),
    )
    with op.batch_alter_table("subject", schema=None) as batch_op:
        batch_op.create_index("subject__history_uid", ["history_uid"], unique=False)

    op.create_table(
        "thread",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("history_uid", sa.Text(), nullable=False),
        sa.Column("thread_id", sa.Text(), nullable=False),
        sa.Column("parent_id", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["history_uid"],
            ["history.uid"],
            name=op.f("fk_thread_history_uid_history"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_thread")),
    )
    with op.batch_alter_table("thread", schema=None) as batch_op:
        batch_op.create_index("thread__history_uid", ["history_uid"], unique=False)



def downgrade() -> None:
    with op.batch_alter_table("thread", schema=None) as batch_op:
        batch_op.drop_index("thread__history_uid")

    op.drop_table("thread")
    with op.batch_alter_table("subject", schema=None) as batch_op:
        batch_op.drop_index("subject__history_uid")

    op.drop_table("subject")
    op.drop_table("pubsub_subs")
    with op.batch_alter_table("pubsub_items", schema=None) as batch_op:
        batch_op.drop_index("pubsub_items__updated")
        batch_op.drop_index("pubsub_items__node_id_updated_id")
        batch_op.drop_index("pubsub_items__node_id_id")
        batch_op.drop_index("pubsub_items__created")

    op.drop_table("pubsub_items")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("message__history_uid")

    op.drop_table("message")
    with op.batch_alter_table("pubsub_nodes", schema=None) as batch_op:
        batch_op.drop_index("pubsub_nodes__sync_state")
        batch_op.drop_index("pubsub_nodes__service_name")

    op.drop_table("pubsub_nodes")
    op.drop_table("private_ind_bin")
    op.drop_table("private_ind")
    op.drop_table("param_ind")
    with op.batch_alter_table("history", schema=None) as batch_op:
        batch_op.drop_index("history__profile_id_timestamp")
        batch_op.drop_index("history__profile_id_received_timestamp")

    op.drop_table("history")
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_index("files__profile_id_owner_parent")
        batch_op.drop_index("files__profile_id_owner_media_type_media_subtype")

    op.drop_table("files")
    op.drop_table("components")
    op.drop_table("profiles")
    op.drop_table("private_gen_bin")
    op.drop_table("private_gen")
    op.drop_table("param_gen")
