//! The schema of table `cloudtrail`, defined once.
//!
//! [`RECORD_FIELDS`] lists the CloudTrail record keys that get a typed column, in CloudTrail's own
//! spelling; the column name is that key lower-cased, so `eventName` and `eventname` both resolve
//! unquoted in SQL. Everything else about a record (unknown keys, values of an unexpected JSON
//! type, keys that collide by case) is kept verbatim in [`EXTRA`]. The normalizer (ingest) and the
//! rebuild (export) both walk this one list, so adding a field here is the whole change.
//!
//! After the record's columns come the columns ingest derives: where the row came from
//! ([`SOURCEFILE`], [`RECORDHASH`]), its [`REGION`], for an STS call that minted temporary
//! credentials the key and session it minted ([`MINTEDKEY`], [`MINTEDSESSION`]), so that "who
//! is behind this key" is a point lookup pruned by bloom filters instead of a scan of every STS
//! call's JSON, the ARNs of its resources as one text ([`RESOURCEARNS`]) and who acted
//! ([`ACTOR`]). The table is
//! partitioned by [`DAY`] only; within a day's files rows are ordered by call, then region and
//! time (`datafile::SORT_COLUMNS`), so a call, a region or a time range is found through
//! row-group and page statistics (a partition per day and region made thousands of small files,
//! and every query paid for each).

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

/// How a CloudTrail value is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A JSON string.
    Str,
    /// A JSON boolean.
    Bool,
    /// A string `YYYY-MM-DDTHH:MM:SSZ`, stored as TIMESTAMP(µs, UTC).
    Timestamp,
    /// A free-form value kept as its exact JSON text (any JSON type, `null` included).
    Json,
    /// An object with known members.
    Struct(&'static [FieldSpec]),
    /// An array of objects with known members.
    List(&'static [FieldSpec]),
}

/// One CloudTrail key and how it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// The key as CloudTrail writes it (`eventName`); the column is its lower-case form.
    pub key: &'static str,
    pub kind: Kind,
}

const fn f(key: &'static str, kind: Kind) -> FieldSpec {
    FieldSpec { key, kind }
}

use Kind::{Bool, Json, List, Str, Struct, Timestamp};

const SESSION_ISSUER: &[FieldSpec] = &[
    f("type", Str),
    f("principalId", Str),
    f("arn", Str),
    f("accountId", Str),
    f("userName", Str),
];
const WEB_ID_FEDERATION: &[FieldSpec] = &[f("federatedProvider", Str), f("attributes", Json)];
const SESSION_ATTRIBUTES: &[FieldSpec] = &[f("creationDate", Str), f("mfaAuthenticated", Str)];
const SESSION_CONTEXT: &[FieldSpec] = &[
    f("sessionIssuer", Struct(SESSION_ISSUER)),
    f("webIdFederationData", Struct(WEB_ID_FEDERATION)),
    f("attributes", Struct(SESSION_ATTRIBUTES)),
    f("sourceIdentity", Str),
    f("ec2RoleDelivery", Str),
    f("assumedRoot", Str),
    f("signInSessionArn", Str),
];
const ON_BEHALF_OF: &[FieldSpec] = &[f("userId", Str), f("identityStoreArn", Str)];
const IN_SCOPE_OF: &[FieldSpec] = &[
    f("sourceArn", Str),
    f("sourceAccount", Str),
    f("issuerType", Str),
    f("credentialsIssuedTo", Str),
];
const INVOKED_BY_DELEGATE: &[FieldSpec] = &[f("accountId", Str)];
const USER_IDENTITY: &[FieldSpec] = &[
    f("type", Str),
    f("principalId", Str),
    f("arn", Str),
    f("accountId", Str),
    f("accessKeyId", Str),
    f("userName", Str),
    f("invokedBy", Str),
    f("credentialId", Str),
    f("identityProvider", Str),
    f("sessionContext", Struct(SESSION_CONTEXT)),
    f("onBehalfOf", Struct(ON_BEHALF_OF)),
    f("inScopeOf", Struct(IN_SCOPE_OF)),
    f("invokedByDelegate", Struct(INVOKED_BY_DELEGATE)),
];
const RESOURCE: &[FieldSpec] = &[f("ARN", Str), f("accountId", Str), f("type", Str)];
const TLS_DETAILS: &[FieldSpec] = &[
    f("tlsVersion", Str),
    f("cipherSuite", Str),
    f("clientProvidedHostHeader", Str),
    f("keyExchange", Str),
];

/// The documented top-level fields of a CloudTrail record (format reference §1.2, §1.5).
pub const RECORD_FIELDS: &[FieldSpec] = &[
    f("eventVersion", Str),
    f("eventTime", Timestamp),
    f("eventSource", Str),
    f("eventName", Str),
    f("awsRegion", Str),
    f("sourceIPAddress", Str),
    f("userAgent", Str),
    f("userIdentity", Struct(USER_IDENTITY)),
    f("errorCode", Str),
    f("errorMessage", Str),
    f("requestParameters", Json),
    f("responseElements", Json),
    f("additionalEventData", Json),
    f("requestID", Str),
    f("eventID", Str),
    f("eventType", Str),
    f("eventCategory", Str),
    f("apiVersion", Str),
    f("readOnly", Bool),
    f("managementEvent", Bool),
    f("resources", List(RESOURCE)),
    f("recipientAccountId", Str),
    f("sharedEventID", Str),
    f("serviceEventDetails", Json),
    f("vpcEndpointId", Str),
    f("vpcEndpointAccountId", Str),
    f("addendum", Json),
    f("sessionCredentialFromConsole", Str),
    f("tlsDetails", Struct(TLS_DETAILS)),
    f("edgeDeviceDetails", Json),
    f("insightDetails", Json),
    f("eventContext", Json),
    f("annotation", Str),
];

/// Column of the record's timestamp (typed from `eventTime`).
pub const EVENTTIME: &str = "eventtime";
/// Column of the record's `eventID`.
pub const EVENTID: &str = "eventid";
/// Column of the record's `awsRegion`.
pub const AWSREGION: &str = "awsregion";
/// Unknown keys and values of an unexpected type, as a JSON object under their original keys.
pub const EXTRA: &str = "extra";
/// Where the row came from: the source file's path.
pub const SOURCEFILE: &str = "sourcefile";
/// 64-bit content hash of the record (whitespace-insensitive); identical records share it.
pub const RECORDHASH: &str = "recordhash";
/// The record's region: `awsRegion`, or else the region segment of the source key. Rows of a
/// data file are ordered by it (then by time).
pub const REGION: &str = "region";
/// For a successful STS call that minted temporary credentials ([`MINTING_CALLS`]): the access
/// key it minted (`responseElements.credentials.accessKeyId`); null on every other row.
pub const MINTEDKEY: &str = "mintedkey";
/// For the same calls: the assumed-role session the credentials belong to
/// (`responseElements.assumedRoleUser.arn`), when the call names one.
pub const MINTEDSESSION: &str = "mintedsession";
/// The ARNs of the record's `resources`, one per line, as `resource_arns(resources)` gives them
/// ([`crate::arns`]); null when the record has no `resources`. A search of the ARNs reads this
/// one text column, not the three members of every resource in the list. A lake made by an
/// earlier trailhouse lacks it ([`ADDED_COLUMNS`]).
pub const RESOURCEARNS: &str = "resourcearns";
/// Who acted, as `actor(useridentity)` gives it ([`crate::actor`]): the identity's ARN, else
/// `invokedBy`, else its principal id, else its type; null when the record has no identity. A
/// question that lists or groups by actor reads this one column, not four members of the
/// identity with their nesting levels. A lake made by an earlier trailhouse lacks it
/// ([`ADDED_COLUMNS`]).
pub const ACTOR: &str = "actor";
/// The key of the field metadata [`marked_derived`] gives a derived column (its value: the
/// column's name), so that a reader can tell the table's column from another of the same name
/// a query made (`SELECT useridentity, 'x' AS actor …`).
pub const DERIVED_KEY: &str = "trailhouse.derived";

/// `schema` with its derived columns ([`ACTOR`]) marked by [`DERIVED_KEY`]: what a query engine
/// presents the table as, so that `actor(useridentity)` is read from the column only where it
/// is the table's.
pub fn marked_derived(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let mut f = f.as_ref().clone();
            if f.name() == ACTOR {
                let mut metadata = f.metadata().clone();
                metadata.insert(DERIVED_KEY.to_string(), ACTOR.to_string());
                f = f.with_metadata(metadata);
            }
            f
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Derived columns added to the table after lakes were made without them: a lake without them
/// is read and added to as it is (its files answer from the columns they derive from).
pub const ADDED_COLUMNS: [&str; 2] = [RESOURCEARNS, ACTOR];
/// The STS calls whose response carries newly minted temporary credentials.
pub const MINTING_CALLS: [&str; 6] = [
    "AssumeRole",
    "AssumeRoleWithSAML",
    "AssumeRoleWithWebIdentity",
    "GetSessionToken",
    "GetFederationToken",
    "AssumeRoot",
];
/// The event source of those calls.
pub const STS_SOURCE: &str = "sts.amazonaws.com";
/// Partition column: UTC date of `eventTime`.
pub const DAY: &str = "day";
/// Partition columns, in path order.
pub const PARTITION_COLUMNS: [&str; 1] = [DAY];

/// Name of the main table in SQL.
pub const TABLE_NAME: &str = "cloudtrail";
/// Name of the quarantine table in SQL.
pub const QUARANTINE_TABLE_NAME: &str = "quarantine";

/// Name of the table of integrity verdicts in SQL (as the lake stores them, every check; the
/// query engine shows the latest per source file under this name).
pub const INTEGRITY_TABLE_NAME: &str = "integrity";

/// Integrity columns: one row per log file each time `trailhouse verify --record` checks it.
pub mod integrity {
    /// The log file, named as ingest names it (joins `cloudtrail.sourcefile`).
    pub const SOURCEFILE: &str = "sourcefile";
    /// `valid`, `modified`, `missing`, `not-covered` or `unverified`.
    pub const VERDICT: &str = "verdict";
    /// Why, when not valid.
    pub const REASON: &str = "reason";
    /// The digest file that lists it.
    pub const DIGEST: &str = "digest";
    /// That digest's verdict (`valid`, `chain-broken`, `bad-signature`, …).
    pub const DIGEST_VERDICT: &str = "digest_verdict";
    /// When the check ran.
    pub const CHECKED_AT: &str = "checked_at";
}

/// Quarantine columns.
pub mod quarantine {
    /// The source file's path.
    pub const SOURCEFILE: &str = "sourcefile";
    /// 0-based position of the record in its file.
    pub const RECORDINDEX: &str = "recordindex";
    /// Why the record could not be placed.
    pub const REASON: &str = "reason";
    /// The record's exact JSON text.
    pub const RECORD: &str = "record";
}

/// The column name of a CloudTrail key.
pub fn column_name(key: &str) -> String {
    key.to_ascii_lowercase()
}

/// The Arrow type of a field kind.
pub fn data_type(kind: Kind) -> DataType {
    match kind {
        Kind::Str | Kind::Json => DataType::Utf8,
        Kind::Bool => DataType::Boolean,
        Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Kind::Struct(children) => DataType::Struct(struct_fields(children)),
        Kind::List(children) => DataType::List(Arc::new(Field::new(
            "element",
            DataType::Struct(struct_fields(children)),
            true,
        ))),
    }
}

/// The Arrow fields of a struct's members.
pub fn struct_fields(children: &[FieldSpec]) -> Fields {
    children
        .iter()
        .map(|c| Field::new(column_name(c.key), data_type(c.kind), true))
        .collect()
}

static FILE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields: Vec<Field> = RECORD_FIELDS
        .iter()
        .map(|s| Field::new(column_name(s.key), data_type(s.kind), true))
        .collect();
    fields.push(Field::new(EXTRA, DataType::Utf8, true));
    fields.push(Field::new(SOURCEFILE, DataType::Utf8, false));
    fields.push(Field::new(RECORDHASH, DataType::Int64, false));
    fields.push(Field::new(REGION, DataType::Utf8, false));
    fields.push(Field::new(MINTEDKEY, DataType::Utf8, true));
    fields.push(Field::new(MINTEDSESSION, DataType::Utf8, true));
    fields.push(Field::new(RESOURCEARNS, DataType::Utf8, true));
    fields.push(Field::new(ACTOR, DataType::Utf8, true));
    Arc::new(Schema::new(fields))
});

/// Schema of the Parquet data files: every column but the partition columns (Delta convention).
pub fn file_schema() -> SchemaRef {
    FILE_SCHEMA.clone()
}

/// Schema of table `cloudtrail`: the file schema plus the partition column `day` DATE.
pub fn table_schema() -> SchemaRef {
    let mut fields: Vec<Field> = file_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(DAY, DataType::Date32, false));
    Arc::new(Schema::new(fields))
}

/// Schema of table `quarantine`.
pub fn quarantine_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(quarantine::SOURCEFILE, DataType::Utf8, false),
        Field::new(quarantine::RECORDINDEX, DataType::Int64, false),
        Field::new(quarantine::REASON, DataType::Utf8, false),
        Field::new(quarantine::RECORD, DataType::Utf8, false),
    ]))
}

/// Schema of table `integrity`.
pub fn integrity_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(integrity::SOURCEFILE, DataType::Utf8, false),
        Field::new(integrity::VERDICT, DataType::Utf8, false),
        Field::new(integrity::REASON, DataType::Utf8, true),
        Field::new(integrity::DIGEST, DataType::Utf8, true),
        Field::new(integrity::DIGEST_VERDICT, DataType::Utf8, true),
        Field::new(
            integrity::CHECKED_AT,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
}

/// Formats a timestamp the way CloudTrail writes `eventTime`.
pub fn format_event_time(micros: i64) -> Option<String> {
    let t = chrono::DateTime::from_timestamp_micros(micros)?;
    Some(if micros % 1_000_000 == 0 {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string()
    })
}

/// `schema` with its text types, nested ones included, as string views, except in the
/// top-level columns `plain`. A reader told so decodes the text as views: a value of a
/// dictionary-encoded column points into the dictionary (a plain one into its page) instead of
/// being copied out of it, and only what the reader keeps is cast.
pub fn text_as_views(schema: &Schema, plain: &[&str]) -> Schema {
    Schema::new_with_metadata(
        schema
            .fields()
            .iter()
            .map(|f| {
                if plain.contains(&f.name().as_str()) {
                    f.as_ref().clone()
                } else {
                    view_field(f)
                }
            })
            .collect::<Vec<_>>(),
        schema.metadata().clone(),
    )
}

/// `f` with its text, nested text included, as string views.
fn view_field(f: &Field) -> Field {
    f.clone().with_data_type(type_as_views(f.data_type()))
}

/// `t` with its text, nested text included, as string views (as [`text_as_views`] reads a
/// column).
pub fn type_as_views(t: &DataType) -> DataType {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 => DataType::Utf8View,
        DataType::Struct(fields) => {
            DataType::Struct(fields.iter().map(|f| view_field(f)).collect())
        }
        DataType::List(f) => DataType::List(Arc::new(view_field(f))),
        DataType::LargeList(f) => DataType::LargeList(Arc::new(view_field(f))),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_are_unique_case_insensitively() {
        let schema = table_schema();
        let mut names: Vec<_> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
        assert!(names.iter().all(|n| n == &n.to_ascii_lowercase()));
    }

    #[test]
    fn the_added_columns_end_the_file_schema_in_their_order() {
        // Ingest appends them after the others, in this order (`derived::added_column`).
        let fields = file_schema().fields().clone();
        let last: Vec<&str> = fields[fields.len() - ADDED_COLUMNS.len()..]
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(last, ADDED_COLUMNS);
    }

    #[test]
    fn nested_fields_are_lower_case() {
        let schema = table_schema();
        let ui = schema
            .field_with_name("useridentity")
            .expect("useridentity");
        let DataType::Struct(fields) = ui.data_type() else {
            panic!("useridentity is not a struct")
        };
        assert!(fields.find("sessioncontext").is_some());
        assert!(fields.find("accesskeyid").is_some());
    }

    #[test]
    fn event_time_round_trips_cloudtrail_format() {
        let t = chrono::DateTime::parse_from_rfc3339("2024-09-09T17:51:44Z").expect("time");
        let micros = t.timestamp_micros();
        assert_eq!(
            format_event_time(micros).as_deref(),
            Some("2024-09-09T17:51:44Z")
        );
        assert_eq!(
            format_event_time(micros + 120_000).as_deref(),
            Some("2024-09-09T17:51:44.120Z")
        );
    }
}
