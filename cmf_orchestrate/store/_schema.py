"""ML Metadata's schema (version 10), as ml-metadata 1.15-1.21 create it on each backend.

The DDL below produces the same tables, columns, types, constraints and indexes as
ml-metadata's own ``metadata_source_query_config``: a database created here opens with
ml-metadata without migration, and one ml-metadata created opens here. The SQLAlchemy
tables describe the same schema for queries; they are never used to create it.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)

from cmf_orchestrate.records import ExecutionState

__all__ = [
    "ARTIFACT",
    "ARTIFACT_PROPERTY",
    "ARTIFACT_STATE_LIVE",
    "ASSOCIATION",
    "ATTRIBUTION",
    "CONTEXT",
    "CONTEXT_PROPERTY",
    "DDL",
    "EVENT",
    "EXECUTION",
    "EXECUTION_PROPERTY",
    "EXECUTION_STATE_CODES",
    "MLMD_ENV",
    "PARENT_CONTEXT",
    "SCHEMA_VERSION",
    "SYSTEM_TYPES",
    "TYPE",
    "TYPE_PROPERTY",
    "TypeKind",
]

#: ``Execution.last_known_state`` as ML Metadata stores it (its ``Execution.State`` numbers).
EXECUTION_STATE_CODES: dict[ExecutionState, int] = {
    ExecutionState.UNKNOWN: 0,
    ExecutionState.NEW: 1,
    ExecutionState.RUNNING: 2,
    ExecutionState.COMPLETE: 3,
    ExecutionState.FAILED: 4,
    ExecutionState.CACHED: 5,
    ExecutionState.CANCELED: 6,
}
#: ``Artifact.state`` of a recorded artifact (ML Metadata's ``Artifact.LIVE``).
ARTIFACT_STATE_LIVE = 2

#: ``MLMDEnv.schema_version`` of ml-metadata 1.15 to 1.21.
SCHEMA_VERSION = 10


class TypeKind:
    """``Type.type_kind``: what a type describes."""

    EXECUTION = 0
    ARTIFACT = 1
    CONTEXT = 2


#: The types ml-metadata inserts when it creates a store, in its order (ids 1 to 9).
SYSTEM_TYPES: tuple[tuple[str, int], ...] = (
    ("mlmd.Dataset", TypeKind.ARTIFACT),
    ("mlmd.Model", TypeKind.ARTIFACT),
    ("mlmd.Metrics", TypeKind.ARTIFACT),
    ("mlmd.Statistics", TypeKind.ARTIFACT),
    ("mlmd.Train", TypeKind.EXECUTION),
    ("mlmd.Transform", TypeKind.EXECUTION),
    ("mlmd.Process", TypeKind.EXECUTION),
    ("mlmd.Evaluate", TypeKind.EXECUTION),
    ("mlmd.Deploy", TypeKind.EXECUTION),
)

_meta = MetaData()


def _table(name: str, *columns: Column[object]) -> Table:
    # Unquoted: PostgreSQL folds the names of ml-metadata's unquoted DDL to lower case.
    return Table(name, _meta, *columns, quote=False)


TYPE = _table(
    "Type",
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False),
    Column("version", String(255)),
    Column("type_kind", SmallInteger, nullable=False),
    Column("description", Text),
    Column("input_type", Text),
    Column("output_type", Text),
    Column("external_id", String(255)),
)
TYPE_PROPERTY = _table(
    "TypeProperty",
    Column("type_id", Integer, primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("data_type", Integer),
)


def _node(name: str, *columns: Column[object]) -> Table:
    return _table(
        name,
        Column("id", Integer, primary_key=True),
        Column("type_id", Integer, nullable=False),
        *columns,
        Column("name", String(255)),
        Column("external_id", String(255)),
        Column("create_time_since_epoch", BigInteger, nullable=False),
        Column("last_update_time_since_epoch", BigInteger, nullable=False),
    )


def _properties(name: str, owner: str) -> Table:
    return _table(
        name,
        Column(owner, Integer, primary_key=True),
        Column("name", String(255), primary_key=True),
        Column("is_custom_property", Boolean, primary_key=True),
        Column("int_value", Integer),
        Column("double_value", Float(53)),
        Column("string_value", Text),
        Column("byte_value", LargeBinary),
        Column("proto_value", LargeBinary),
        Column("bool_value", Boolean),
    )


ARTIFACT = _node("Artifact", Column("uri", Text), Column("state", Integer))
EXECUTION = _node("Execution", Column("last_known_state", Integer))
CONTEXT = _node("Context")
ARTIFACT_PROPERTY = _properties("ArtifactProperty", "artifact_id")
EXECUTION_PROPERTY = _properties("ExecutionProperty", "execution_id")
CONTEXT_PROPERTY = _properties("ContextProperty", "context_id")
EVENT = _table(
    "Event",
    Column("id", Integer, primary_key=True),
    Column("artifact_id", Integer, nullable=False),
    Column("execution_id", Integer, nullable=False),
    Column("type", Integer, nullable=False),
    Column("milliseconds_since_epoch", BigInteger),
)
PARENT_CONTEXT = _table(
    "ParentContext",
    Column("context_id", Integer, primary_key=True),
    Column("parent_context_id", Integer, primary_key=True),
)
ASSOCIATION = _table(
    "Association",
    Column("id", Integer, primary_key=True),
    Column("context_id", Integer, nullable=False),
    Column("execution_id", Integer, nullable=False),
)
ATTRIBUTION = _table(
    "Attribution",
    Column("id", Integer, primary_key=True),
    Column("context_id", Integer, nullable=False),
    Column("artifact_id", Integer, nullable=False),
)
MLMD_ENV = _table("MLMDEnv", Column("schema_version", Integer, primary_key=True))

# -- DDL per backend --------------------------------------------------------------------------
# SQLite keeps the statements' text in sqlite_master, so they are written exactly as
# ml-metadata writes them.

_SQLITE_PROPERTY_COLUMNS = (
    "    `is_custom_property` TINYINT(1) NOT NULL,    `int_value` INT,    `double_value` DOUBLE,"
    "    `string_value` TEXT,    `byte_value` BLOB,    `proto_value` BLOB,    `bool_value` BOOLEAN, "
)
_SQLITE_NODE_TIMES = (
    "    `create_time_since_epoch` INT NOT NULL DEFAULT 0,    `last_update_time_since_epoch` INT NOT NULL DEFAULT 0,"
)

_SQLITE = (
    " CREATE TABLE IF NOT EXISTS `Type` (    `id` INTEGER PRIMARY KEY AUTOINCREMENT,    `name` VARCHAR(255) NOT NULL,"
    "    `version` VARCHAR(255),    `type_kind` TINYINT(1) NOT NULL,    `description` TEXT,    `input_type` TEXT,"
    "    `output_type` TEXT,    `external_id` VARCHAR(255) UNIQUE ); ",
    " CREATE TABLE IF NOT EXISTS `TypeProperty` (    `type_id` INT NOT NULL,    `name` VARCHAR(255) NOT NULL,"
    "    `data_type` INT NULL,  PRIMARY KEY (`type_id`, `name`)); ",
    " CREATE TABLE IF NOT EXISTS `ParentType` (    `type_id` INT NOT NULL,    `parent_type_id` INT NOT NULL,"
    "  PRIMARY KEY (`type_id`, `parent_type_id`)); ",
    " CREATE TABLE IF NOT EXISTS `Artifact` (    `id` INTEGER PRIMARY KEY AUTOINCREMENT,    `type_id` INT NOT NULL,"
    "    `uri` TEXT,    `state` INT,    `name` VARCHAR(255),    `external_id` VARCHAR(255) UNIQUE,"
    + _SQLITE_NODE_TIMES
    + "    UNIQUE(`type_id`, `name`)  ); ",
    " CREATE TABLE IF NOT EXISTS `ArtifactProperty` (    `artifact_id` INT NOT NULL,    `name` VARCHAR(255) NOT NULL,"
    + _SQLITE_PROPERTY_COLUMNS
    + " PRIMARY KEY (`artifact_id`, `name`, `is_custom_property`)); ",
    " CREATE TABLE IF NOT EXISTS `Execution` (    `id` INTEGER PRIMARY KEY AUTOINCREMENT,    `type_id` INT NOT NULL,"
    "    `last_known_state` INT,    `name` VARCHAR(255),    `external_id` VARCHAR(255) UNIQUE,"
    + _SQLITE_NODE_TIMES
    + "    UNIQUE(`type_id`, `name`)  ); ",
    " CREATE TABLE IF NOT EXISTS `ExecutionProperty` (    `execution_id` INT NOT NULL,    `name` VARCHAR(255) NOT NULL,"
    + _SQLITE_PROPERTY_COLUMNS
    + " PRIMARY KEY (`execution_id`, `name`, `is_custom_property`)); ",
    " CREATE TABLE IF NOT EXISTS `Event` (    `id` INTEGER PRIMARY KEY AUTOINCREMENT,    `artifact_id` INT NOT NULL,"
    "    `execution_id` INT NOT NULL,    `type` INT NOT NULL,    `milliseconds_since_epoch` INT,"
    "    UNIQUE(`artifact_id`, `execution_id`, `type`)  ); ",
    " CREATE TABLE IF NOT EXISTS `EventPath` (    `event_id` INT NOT NULL,    `is_index_step` TINYINT(1) NOT NULL,"
    "    `step_index` INT,    `step_key` TEXT  ); ",
    " CREATE TABLE IF NOT EXISTS `MLMDEnv` (    `schema_version` INTEGER PRIMARY KEY  ); ",
    " CREATE TABLE IF NOT EXISTS `Context` (    `id` INTEGER PRIMARY KEY AUTOINCREMENT,    `type_id` INT NOT NULL,"
    "    `name` VARCHAR(255) NOT NULL,    `external_id` VARCHAR(255) UNIQUE,"
    + _SQLITE_NODE_TIMES
    + "    UNIQUE(`type_id`, `name`)  ); ",
    " CREATE TABLE IF NOT EXISTS `ContextProperty` (    `context_id` INT NOT NULL,    `name` VARCHAR(255) NOT NULL,"
    + _SQLITE_PROPERTY_COLUMNS
    + " PRIMARY KEY (`context_id`, `name`, `is_custom_property`)); ",
    " CREATE TABLE IF NOT EXISTS `ParentContext` (    `context_id` INT NOT NULL,    `parent_context_id` INT NOT NULL,"
    "  PRIMARY KEY (`context_id`, `parent_context_id`)); ",
    " CREATE TABLE IF NOT EXISTS `Association` (    `id` INTEGER PRIMARY KEY AUTOINCREMENT,"
    "    `context_id` INT NOT NULL,    `execution_id` INT NOT NULL,    UNIQUE(`context_id`, `execution_id`)  ); ",
    " CREATE TABLE IF NOT EXISTS `Attribution` (    `id` INTEGER PRIMARY KEY AUTOINCREMENT,"
    "    `context_id` INT NOT NULL,    `artifact_id` INT NOT NULL,    UNIQUE(`context_id`, `artifact_id`)  ); ",
)

# (name, table, columns, SQLite partial-index condition)
_INDEXES: tuple[tuple[str, str, str, str], ...] = (
    ("idx_artifact_uri", "Artifact", "uri", ""),
    ("idx_artifact_create_time_since_epoch", "Artifact", "create_time_since_epoch", ""),
    ("idx_artifact_last_update_time_since_epoch", "Artifact", "last_update_time_since_epoch", ""),
    ("idx_event_execution_id", "Event", "execution_id", ""),
    ("idx_parentcontext_parent_context_id", "ParentContext", "parent_context_id", ""),
    ("idx_type_name", "Type", "name", ""),
    ("idx_execution_create_time_since_epoch", "Execution", "create_time_since_epoch", ""),
    ("idx_execution_last_update_time_since_epoch", "Execution", "last_update_time_since_epoch", ""),
    ("idx_context_create_time_since_epoch", "Context", "create_time_since_epoch", ""),
    ("idx_context_last_update_time_since_epoch", "Context", "last_update_time_since_epoch", ""),
    ("idx_eventpath_event_id", "EventPath", "event_id", ""),
    *(
        (
            f"idx_{kind}_property_{value}",
            f"{table}Property",
            f"name, is_custom_property, {value}_value",
            f"{value}_value",
        )
        for kind, table in (("artifact", "Artifact"), ("execution", "Execution"), ("context", "Context"))
        for value in ("int", "double", "string")
    ),
    ("idx_type_external_id", "Type", "external_id", ""),
    ("idx_artifact_external_id", "Artifact", "external_id", ""),
    ("idx_execution_external_id", "Execution", "external_id", ""),
    ("idx_context_external_id", "Context", "external_id", ""),
)


def _sqlite_index(name: str, table: str, columns: str, condition: str) -> str:
    quoted = ", ".join(f"`{c.strip()}`" for c in columns.split(","))
    where = f"  WHERE `{condition}` IS NOT NULL" if condition else ""
    return f" CREATE INDEX IF NOT EXISTS `{name}`  ON `{table}`({quoted}){where}; "


_PG_PROPERTY_COLUMNS = (
    "is_custom_property BOOLEAN NOT NULL, int_value INT, double_value DOUBLE PRECISION, string_value TEXT, "
    "byte_value BYTEA, proto_value BYTEA, bool_value BOOLEAN"
)
_PG_NODE_TIMES = (
    "create_time_since_epoch BIGINT NOT NULL DEFAULT 0, last_update_time_since_epoch BIGINT NOT NULL DEFAULT 0"
)

_POSTGRESQL = (
    "CREATE TABLE IF NOT EXISTS Type (id SERIAL PRIMARY KEY, name VARCHAR(255) NOT NULL, version VARCHAR(255), "
    "type_kind SMALLINT NOT NULL, description TEXT, input_type TEXT, output_type TEXT, "
    "external_id VARCHAR(255) UNIQUE)",
    "CREATE TABLE IF NOT EXISTS TypeProperty (type_id INT NOT NULL, name VARCHAR(255) NOT NULL, data_type INT NULL, "
    "PRIMARY KEY (type_id, name))",
    "CREATE TABLE IF NOT EXISTS ParentType (type_id INT NOT NULL, parent_type_id INT NOT NULL, "
    "PRIMARY KEY (type_id, parent_type_id))",
    "CREATE TABLE IF NOT EXISTS Artifact (id SERIAL PRIMARY KEY, type_id INT NOT NULL, uri TEXT, state INT, "
    f"name VARCHAR(255), external_id VARCHAR(255) UNIQUE, {_PG_NODE_TIMES}, "
    "CONSTRAINT UniqueArtifactTypeName UNIQUE(type_id, name))",
    "CREATE TABLE IF NOT EXISTS ArtifactProperty (artifact_id INT NOT NULL, name VARCHAR(255) NOT NULL, "
    f"{_PG_PROPERTY_COLUMNS}, PRIMARY KEY (artifact_id, name, is_custom_property))",
    "CREATE TABLE IF NOT EXISTS Execution (id SERIAL PRIMARY KEY, type_id INT NOT NULL, last_known_state INT, "
    f"name VARCHAR(255), external_id VARCHAR(255) UNIQUE, {_PG_NODE_TIMES}, "
    "CONSTRAINT UniqueExecutionTypeName UNIQUE(type_id, name))",
    "CREATE TABLE IF NOT EXISTS ExecutionProperty (execution_id INT NOT NULL, name VARCHAR(255) NOT NULL, "
    f"{_PG_PROPERTY_COLUMNS}, PRIMARY KEY (execution_id, name, is_custom_property))",
    "CREATE TABLE IF NOT EXISTS Event (id SERIAL PRIMARY KEY, artifact_id INT NOT NULL, execution_id INT NOT NULL, "
    "type INT NOT NULL, milliseconds_since_epoch BIGINT, "
    "CONSTRAINT UniqueEvent UNIQUE(artifact_id, execution_id, type))",
    "CREATE TABLE IF NOT EXISTS EventPath (event_id INT NOT NULL, is_index_step BOOLEAN NOT NULL, step_index INT, "
    "step_key TEXT)",
    "CREATE TABLE IF NOT EXISTS MLMDEnv (schema_version INTEGER PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS Context (id SERIAL PRIMARY KEY, type_id INT NOT NULL, name VARCHAR(255) NOT NULL, "
    f"external_id VARCHAR(255) UNIQUE, {_PG_NODE_TIMES}, UNIQUE(type_id, name))",
    "CREATE TABLE IF NOT EXISTS ContextProperty (context_id INT NOT NULL, name VARCHAR(255) NOT NULL, "
    f"{_PG_PROPERTY_COLUMNS}, PRIMARY KEY (context_id, name, is_custom_property))",
    "CREATE TABLE IF NOT EXISTS ParentContext (context_id INT NOT NULL, parent_context_id INT NOT NULL, "
    "PRIMARY KEY (context_id, parent_context_id))",
    "CREATE TABLE IF NOT EXISTS Association (id SERIAL PRIMARY KEY, context_id INT NOT NULL, "
    "execution_id INT NOT NULL, UNIQUE(context_id, execution_id))",
    "CREATE TABLE IF NOT EXISTS Attribution (id SERIAL PRIMARY KEY, context_id INT NOT NULL, "
    "artifact_id INT NOT NULL, UNIQUE(context_id, artifact_id))",
)

_MY_PROPERTY_COLUMNS = (
    "`is_custom_property` TINYINT(1) NOT NULL, `int_value` INT, `double_value` DOUBLE, `string_value` MEDIUMTEXT, "
    "`byte_value` MEDIUMBLOB, `proto_value` MEDIUMBLOB, `bool_value` TINYINT(1)"
)
_MY_NODE_TIMES = (
    "`create_time_since_epoch` BIGINT NOT NULL DEFAULT 0, `last_update_time_since_epoch` BIGINT NOT NULL DEFAULT 0"
)

_MYSQL = (
    "CREATE TABLE IF NOT EXISTS `Type` (`id` INT PRIMARY KEY AUTO_INCREMENT, `name` VARCHAR(255) NOT NULL, "
    "`version` VARCHAR(255), `type_kind` TINYINT(1) NOT NULL, `description` TEXT, `input_type` TEXT, "
    "`output_type` TEXT, `external_id` VARCHAR(255) UNIQUE)",
    "CREATE TABLE IF NOT EXISTS `TypeProperty` (`type_id` INT NOT NULL, `name` VARCHAR(255) NOT NULL, "
    "`data_type` INT NULL, PRIMARY KEY (`type_id`, `name`))",
    "CREATE TABLE IF NOT EXISTS `ParentType` (`type_id` INT NOT NULL, `parent_type_id` INT NOT NULL, "
    "PRIMARY KEY (`type_id`, `parent_type_id`))",
    "CREATE TABLE IF NOT EXISTS `Artifact` (`id` INTEGER PRIMARY KEY AUTO_INCREMENT, `type_id` INT NOT NULL, "
    f"`uri` TEXT, `state` INT, `name` VARCHAR(255), `external_id` VARCHAR(255) UNIQUE, {_MY_NODE_TIMES}, "
    "CONSTRAINT UniqueArtifactTypeName UNIQUE(`type_id`, `name`))",
    "CREATE TABLE IF NOT EXISTS `ArtifactProperty` (`artifact_id` INT NOT NULL, `name` VARCHAR(255) NOT NULL, "
    f"{_MY_PROPERTY_COLUMNS}, PRIMARY KEY (`artifact_id`, `name`, `is_custom_property`))",
    "CREATE TABLE IF NOT EXISTS `Execution` (`id` INTEGER PRIMARY KEY AUTO_INCREMENT, `type_id` INT NOT NULL, "
    f"`last_known_state` INT, `name` VARCHAR(255), `external_id` VARCHAR(255) UNIQUE, {_MY_NODE_TIMES}, "
    "CONSTRAINT UniqueExecutionTypeName UNIQUE(`type_id`, `name`))",
    "CREATE TABLE IF NOT EXISTS `ExecutionProperty` (`execution_id` INT NOT NULL, `name` VARCHAR(255) NOT NULL, "
    f"{_MY_PROPERTY_COLUMNS}, PRIMARY KEY (`execution_id`, `name`, `is_custom_property`))",
    "CREATE TABLE IF NOT EXISTS `Event` (`id` INTEGER PRIMARY KEY AUTO_INCREMENT, `artifact_id` INT NOT NULL, "
    "`execution_id` INT NOT NULL, `type` INT NOT NULL, `milliseconds_since_epoch` BIGINT, "
    "CONSTRAINT UniqueEvent UNIQUE(`artifact_id`, `execution_id`, `type`))",
    "CREATE TABLE IF NOT EXISTS `EventPath` (`event_id` INT NOT NULL, `is_index_step` TINYINT(1) NOT NULL, "
    "`step_index` INT, `step_key` TEXT)",
    "CREATE TABLE IF NOT EXISTS `MLMDEnv` (`schema_version` INTEGER PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS `Context` (`id` INTEGER PRIMARY KEY AUTO_INCREMENT, `type_id` INT NOT NULL, "
    f"`name` VARCHAR(255) NOT NULL, `external_id` VARCHAR(255) UNIQUE, {_MY_NODE_TIMES}, "
    "UNIQUE(`type_id`, `name`))",
    "CREATE TABLE IF NOT EXISTS `ContextProperty` (`context_id` INT NOT NULL, `name` VARCHAR(255) NOT NULL, "
    f"{_MY_PROPERTY_COLUMNS}, PRIMARY KEY (`context_id`, `name`, `is_custom_property`))",
    "CREATE TABLE IF NOT EXISTS `ParentContext` (`context_id` INT NOT NULL, `parent_context_id` INT NOT NULL, "
    "PRIMARY KEY (`context_id`, `parent_context_id`))",
    "CREATE TABLE IF NOT EXISTS `Association` (`id` INTEGER PRIMARY KEY AUTO_INCREMENT, `context_id` INT NOT NULL, "
    "`execution_id` INT NOT NULL, UNIQUE(`context_id`, `execution_id`))",
    "CREATE TABLE IF NOT EXISTS `Attribution` (`id` INTEGER PRIMARY KEY AUTO_INCREMENT, `context_id` INT NOT NULL, "
    "`artifact_id` INT NOT NULL, UNIQUE(`context_id`, `artifact_id`))",
)

# MySQL indexes a TEXT column by a prefix of its first 255 characters.
_MY_PREFIXED = {"uri": "`uri`(255)", "string_value": "`string_value`(255)"}


def _mysql_index(name: str, table: str, columns: str, _condition: str) -> str:
    parts = [c.strip() for c in columns.split(",")]
    quoted = ", ".join(_MY_PREFIXED.get(c, f"`{c}`") for c in parts)
    return f"ALTER TABLE `{table}` ADD INDEX `{name}` ({quoted})"


def _pg_index(name: str, table: str, columns: str, _condition: str) -> str:
    return f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns})"


#: Statements that create the schema, per backend (without ``MLMDEnv``'s row and the types).
DDL: dict[str, tuple[str, ...]] = {
    "sqlite": tuple(s.strip().rstrip(";") for s in _SQLITE + tuple(_sqlite_index(*index) for index in _INDEXES)),
    "postgresql": _POSTGRESQL + tuple(_pg_index(*index) for index in _INDEXES),
    "mysql": _MYSQL + tuple(_mysql_index(*index) for index in _INDEXES),
}
