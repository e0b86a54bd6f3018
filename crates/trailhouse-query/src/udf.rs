//! SQL functions CloudTrail questions need and DataFusion lacks.
//!
//! `cidr_match(ip, network)`: whether `ip` (IPv4 or IPv6 text) lies in `network`, written as a
//! CIDR block (`192.0.2.0/24`, `2001:db8::/32`) or a single address. Values that are not
//! addresses (`AWS Internal`, service host names) do not match; NULL in gives NULL out. A single
//! IPv4 address is planned as a comparison of the text (`ip = '203.0.113.7'`: CloudTrail writes
//! addresses in that one form), which bloom filters prune.
//!
//! `resource_arns(resources)`: the ARNs of a record's `resources` list as one text, separated by
//! new lines (empty when there are none), so that one `strpos`/`LIKE` over it matches any of them
//! without an `unnest` and a join back. Planned as `resource_arns(resources_arns_only(resources))`,
//! the list narrowed to its ARNs where the scan reads it, so that a scan reads no other member;
//! a data file that stores the text (column `resourcearns`, written by ingest) is read for it
//! instead (`text_views`).
//!
//! `actor(useridentity)`: who acted, as one text: the identity's ARN, else the AWS service that
//! made the call (`invokedBy`), else its principal id, else its type. The one definition every
//! saved query, report and derived table uses; it is rewritten at planning into
//! `actor_of(arn, invokedby, principalid, type)` of those four members, so a scan reads only
//! them, and `actor_of` picks each row's first member in one pass over text in any layout (the
//! scan hands it the members as read, views into their pages, without a cast). DataFusion's
//! `coalesce` is planned as a `CASE`, which a scan analyses again for every file it opens (a
//! tenth of `new-behaviour`'s CPU time over a 2M-event lake) and evaluates in several passes.
//! Where the table stores the answer (column `actor` beside `useridentity`, written by ingest),
//! it is planned as that column instead: one flat text column read, not four members with
//! their nesting levels (a fifth of `ip-activity`'s time at 20M events), and a file written
//! before the column gives it from the members (`text_views`). The definition itself is the
//! lake's (`trailhouse_lake::actor`), so the stored text and this function's are one code.
//!
//! `is_principal(useridentity, name)`: whether the identity is the principal `name` stands for:
//! its ARN or its session's role ARN, a user name, a role or session name, a principal id or an
//! access key id. Rewritten at planning into comparisons of those members, each guarded by a test
//! of the name's shape (an ARN starts `arn:`, a key id is capitals and digits, a role or session
//! name has no `:` or `/`), which the planner answers once for a bound name.
//!
//! `access_denied(errorcode)`: whether an error code is a refusal for lack of permission
//! (`AccessDenied`, `AccessDeniedException`, `Client.UnauthorizedOperation`,
//! `UnauthorizedAccess`, `Forbidden`, …); false for a call without an error code. Rewritten at
//! planning into a null test and the `LIKE`s and comparisons it stands for, so it plans as that
//! SQL written out would.

use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::common::{Column, Result, ScalarValue, exec_err};
use datafusion::functions::core::expr_fn::get_field;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExpressionPlacement, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use trailhouse_lake::actor::{ACTOR_MEMBERS, actor_of_identity, first_present};
use trailhouse_lake::schema::{ACTOR, DERIVED_KEY};

/// Parses `a.b.c.d/n`, `x::y/n` or a bare address into (network, prefix length).
pub fn parse_network(text: &str) -> Option<(IpAddr, u8)> {
    let text = text.trim();
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
        None => (text, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(max);
    (prefix <= max).then_some((addr, prefix))
}

/// Whether `ip` lies in the network `(net, prefix)`.
pub fn contains(net: (IpAddr, u8), ip: &str) -> bool {
    let Ok(ip) = ip.trim().parse::<IpAddr>() else {
        return false;
    };
    match (net.0, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(net.1)).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(net.1)).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CidrMatch {
    signature: Signature,
}

impl ScalarUDFImpl for CidrMatch {
    fn name(&self) -> &str {
        "cidr_match"
    }
    fn simplify(&self, args: Vec<Expr>, _: &SimplifyContext) -> Result<ExprSimplifyResult> {
        if let [ip, Expr::Literal(network, _)] = args.as_slice()
            && let Some(Some(text)) = network.try_as_str()
            && let Some((IpAddr::V4(address), 32)) = parse_network(text)
            && address.to_string() == text
        {
            return Ok(ExprSimplifyResult::Simplified(
                ip.clone().eq(datafusion::logical_expr::lit(text)),
            ));
        }
        Ok(ExprSimplifyResult::Original(args))
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [ip, net] = args.args.as_slice() else {
            return exec_err!("cidr_match takes (ip, network)");
        };
        let ip = cast(&ip.to_array(rows)?, &DataType::Utf8)?;
        let net = cast(&net.to_array(rows)?, &DataType::Utf8)?;
        let (ip, net) = (ip.as_string::<i32>(), net.as_string::<i32>());
        let mut cached: Option<(String, Option<(IpAddr, u8)>)> = None;
        let out: BooleanArray = (0..rows)
            .map(|i| {
                if ip.is_null(i) || net.is_null(i) {
                    return None;
                }
                let n = net.value(i);
                if cached.as_ref().is_none_or(|(t, _)| t != n) {
                    cached = Some((n.to_string(), parse_network(n)));
                }
                let parsed = cached.as_ref().and_then(|(_, p)| *p);
                Some(parsed.is_some_and(|p| contains(p, ip.value(i))))
            })
            .collect();
        scalar_if_all_scalar(&args.args, Arc::new(out))
    }
}

/// A function's result: one value when every argument was one (constant folding), else the
/// array.
pub(crate) fn scalar_if_all_scalar(args: &[ColumnarValue], out: ArrayRef) -> Result<ColumnarValue> {
    if out.len() == 1 && args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?));
    }
    Ok(ColumnarValue::Array(out))
}

/// The `cidr_match` function, for registration.
pub fn cidr_match() -> ScalarUDF {
    ScalarUDF::new_from_impl(CidrMatch {
        signature: Signature::string(2, Volatility::Immutable),
    })
}

/// The name `ResourceArns` is called by (the scan takes the cast off its argument).
pub const RESOURCE_ARNS: &str = "resource_arns";

/// The name `resource_arns` reads its list through: [`ArnsOnly`].
pub const ARNS_ONLY: &str = "resources_arns_only";

static ARNS_ONLY_UDF: LazyLock<ScalarUDF> = LazyLock::new(arns_only);
static RESOURCE_ARNS_UDF: LazyLock<ScalarUDF> = LazyLock::new(resource_arns);

#[derive(Debug, PartialEq, Eq, Hash)]
struct ResourceArns {
    signature: Signature,
}

impl ScalarUDFImpl for ResourceArns {
    fn name(&self) -> &str {
        RESOURCE_ARNS
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        let [resources] = args.as_slice() else {
            return exec_err!("resource_arns takes (resources)");
        };
        // Narrowed when it is a list of structs with ARNs not narrowed yet; anything else is
        // left for the call to refuse in its own name.
        let narrowable = !arns_only_already(resources, info)
            && info
                .get_data_type(resources)
                .is_ok_and(|t| arns_only_type(&t).is_ok());
        if !narrowable {
            return Ok(ExprSimplifyResult::Original(args));
        }
        Ok(ExprSimplifyResult::Simplified(
            RESOURCE_ARNS_UDF.call(vec![ARNS_ONLY_UDF.call(args)]),
        ))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [resources] = args.args.as_slice() else {
            return exec_err!("resource_arns takes (resources)");
        };
        let resources = resources.to_array(rows)?;
        let out = arns_text(resources.as_ref())?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// One text per row: the `arn` members of the list's structs joined by new lines (the lake's
/// definition, which its column `resourcearns` holds).
fn arns_text(resources: &dyn Array) -> Result<StringArray> {
    match trailhouse_lake::arns::resource_arns(resources) {
        Ok(text) => Ok(text),
        Err(what) => exec_err!("resource_arns {what}"),
    }
}

/// The `resource_arns` function, for registration.
pub fn resource_arns() -> ScalarUDF {
    ScalarUDF::new_from_impl(ResourceArns {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

/// `resources_arns_only(resources)`: the list with each struct's `arn` member alone, as views
/// (what `resource_arns` is planned to read). Placed with the scan, as a struct member is: there
/// it is a cast to that narrower type, and the scan of a data file reads the ARNs of the list
/// and neither its account ids nor its types (a search of 20M events' resources for a
/// fragment: three of the list's columns read and decoded, for one used).
#[derive(Debug, PartialEq, Eq, Hash)]
struct ArnsOnly {
    signature: Signature,
}

impl ScalarUDFImpl for ArnsOnly {
    fn name(&self) -> &str {
        ARNS_ONLY
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let [resources] = args else {
            return exec_err!("{ARNS_ONLY} takes (resources)");
        };
        arns_only_type(resources)
    }
    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        // Narrowed already (the list as the scan read it, or this function again): as it is.
        match args.as_slice() {
            [resources] if arns_only_already(resources, info) => {
                Ok(ExprSimplifyResult::Simplified(resources.clone()))
            }
            _ => Ok(ExprSimplifyResult::Original(args)),
        }
    }
    fn placement(&self, args: &[ExpressionPlacement]) -> ExpressionPlacement {
        match args {
            [ExpressionPlacement::Column | ExpressionPlacement::MoveTowardsLeafNodes] => {
                ExpressionPlacement::MoveTowardsLeafNodes
            }
            _ => ExpressionPlacement::KeepInPlace,
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [resources] = args.args.as_slice() else {
            return exec_err!("{ARNS_ONLY} takes (resources)");
        };
        let target = args.return_field.data_type();
        if resources.data_type() == *target {
            return Ok(resources.clone());
        }
        resources.cast_to(target, None)
    }
}

/// A list of structs with an `arn` member (the `resources` column, in whichever string layout)
/// as the same list of structs of that member alone, as views.
pub fn arns_only_type(resources: &DataType) -> Result<DataType> {
    let DataType::List(item) = resources else {
        return exec_err!("{ARNS_ONLY} expects a list of structs, got {resources}");
    };
    let DataType::Struct(members) = item.data_type() else {
        return exec_err!("{ARNS_ONLY} expects a list of structs, got {resources}");
    };
    let Some((_, arn)) = members.find("arn") else {
        return exec_err!("{ARNS_ONLY} expects structs with an `arn` member");
    };
    let arn = arn.as_ref().clone().with_data_type(DataType::Utf8View);
    let structs = item
        .as_ref()
        .clone()
        .with_data_type(DataType::Struct(vec![arn].into()));
    Ok(DataType::List(Arc::new(structs)))
}

/// Whether `resources` is the list narrowed to its ARNs already: a call of
/// `resources_arns_only`, or of its type (the column a plan made of such a call).
fn arns_only_already(resources: &Expr, info: &SimplifyContext) -> bool {
    if matches!(resources, Expr::ScalarFunction(f) if f.name() == ARNS_ONLY) {
        return true;
    }
    info.get_data_type(resources)
        .is_ok_and(|t| arns_only_type(&t).is_ok_and(|narrowed| narrowed == t))
}

/// The `resources_arns_only` function, for registration (plans that `resource_arns` became
/// name it).
pub fn arns_only() -> ScalarUDF {
    ScalarUDF::new_from_impl(ArnsOnly {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Actor {
    signature: Signature,
}

impl ScalarUDFImpl for Actor {
    fn name(&self) -> &str {
        "actor"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        let [identity] = args.as_slice() else {
            return exec_err!("actor takes (useridentity)");
        };
        // A table that stores each row's actor beside its identity is read for it: the
        // table's column (marked so by the lake's table), not another a query named `actor`.
        if let Expr::Column(column) = identity
            && column.name == "useridentity"
        {
            let stored = Column::new(column.relation.clone(), ACTOR);
            if info
                .schema()
                .qualified_field_from_column(&stored)
                .is_ok_and(|(_, f)| {
                    f.data_type() == &DataType::Utf8
                        && f.metadata().get(DERIVED_KEY).map(String::as_str) == Some(ACTOR)
                })
            {
                return Ok(ExprSimplifyResult::Simplified(Expr::Column(stored)));
            }
        }
        let members = ACTOR_MEMBERS
            .iter()
            .map(|m| get_field(identity.clone(), *m))
            .collect();
        Ok(ExprSimplifyResult::Simplified(ACTOR_OF_UDF.call(members)))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // Only reached where the planner did not simplify (the rewrite above is the usual path).
        let rows = args.number_rows;
        let [identity] = args.args.as_slice() else {
            return exec_err!("actor takes (useridentity)");
        };
        let identity = identity.to_array(rows)?;
        let Some(identity) = identity.as_struct_opt() else {
            return exec_err!("actor expects the useridentity column (a struct)");
        };
        match actor_of_identity(identity) {
            Ok(actors) => Ok(ColumnarValue::Array(Arc::new(actors))),
            Err(what) => exec_err!("actor {what}"),
        }
    }
}

/// The `actor` function, for registration.
pub fn actor() -> ScalarUDF {
    ScalarUDF::new_from_impl(Actor {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

/// The name `actor` is planned as (the scan takes the casts off its arguments).
pub const ACTOR_OF: &str = "actor_of";

static ACTOR_OF_UDF: LazyLock<ScalarUDF> = LazyLock::new(actor_of);

/// `actor_of(arn, invokedby, principalid, type)`: each row's first member that is not null, as
/// `coalesce` of them would give, in one pass; the members may come as plain text or as views.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ActorOf {
    signature: Signature,
}

impl ScalarUDFImpl for ActorOf {
    fn name(&self) -> &str {
        ACTOR_OF
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args.iter().find(|t| !text_or_null(t)) {
            Some(other) => exec_err!("actor_of takes text, got {other}"),
            None => Ok(DataType::Utf8),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let members = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<Vec<_>>>()?;
        match first_present(&members, rows) {
            Ok(actors) => Ok(ColumnarValue::Array(Arc::new(actors))),
            Err(what) => exec_err!("actor_of {what}"),
        }
    }
}

fn text_or_null(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
    )
}

/// The `actor_of` function, for registration (plans that `actor` became name it).
pub fn actor_of() -> ScalarUDF {
    ScalarUDF::new_from_impl(ActorOf {
        signature: Signature::any(ACTOR_MEMBERS.len(), Volatility::Immutable),
    })
}

/// Error codes that refuse a call for lack of permission, by pattern: `AccessDenied`,
/// `AccessDeniedException`, `Client.UnauthorizedOperation`, `UnauthorizedAccess` and the like.
pub const REFUSAL_PATTERNS: [&str; 2] = ["AccessDenied", "Unauthorized"];

/// The refusals no pattern catches, compared one by one (as an IN list beside the patterns they
/// measured slower).
pub const REFUSAL_CODES: [&str; 3] = ["Forbidden", "AuthorizationError", "NotAuthorized"];

/// `access_denied(code)` written out: a call without an error code was not refused; one with a
/// code was when a `LIKE` of a pattern or a comparison with another code says so. The null
/// test comes first: most calls have no code, and the `LIKE`s are then evaluated on the rows
/// that have one only (a scan of 20M events that counts the refusals: 0.57 -> 0.43 s).
pub fn access_denied_predicate(code: Expr) -> Expr {
    use datafusion::logical_expr::lit;
    let patterns = REFUSAL_PATTERNS
        .iter()
        .map(|p| code.clone().like(lit(format!("%{p}%"))));
    let codes = REFUSAL_CODES.iter().map(|c| code.clone().eq(lit(*c)));
    let refused = patterns
        .chain(codes)
        .reduce(Expr::or)
        .unwrap_or_else(|| lit(false));
    code.is_not_null().and(refused)
}

/// A function's expression written out, its types made to agree as the planner's analysis would
/// have (it ran before this rewrite): string views beside texts, integer widths.
fn typed(expr: Expr, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
    use datafusion::common::tree_node::TreeNode;
    use datafusion::optimizer::analyzer::type_coercion::TypeCoercionRewriter;
    let expr = expr
        .rewrite(&mut TypeCoercionRewriter::new(info.schema()))?
        .data;
    Ok(ExprSimplifyResult::Simplified(expr))
}

/// Whether `code` is a refusal, as `access_denied_predicate` decides it.
fn is_refusal(code: &str) -> bool {
    REFUSAL_PATTERNS.iter().any(|p| code.contains(p)) || REFUSAL_CODES.contains(&code)
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct AccessDenied {
    signature: Signature,
}

impl ScalarUDFImpl for AccessDenied {
    fn name(&self) -> &str {
        "access_denied"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        let [code] = args.as_slice() else {
            return exec_err!("access_denied takes (errorcode)");
        };
        typed(access_denied_predicate(code.clone()), info)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // Only reached where the planner did not simplify (the rewrite above is the usual path).
        let [code] = args.args.as_slice() else {
            return exec_err!("access_denied takes (errorcode)");
        };
        let code = cast(&code.to_array(args.number_rows)?, &DataType::Utf8)?;
        let out: BooleanArray = code
            .as_string::<i32>()
            .iter()
            .map(|c| Some(c.is_some_and(is_refusal)))
            .collect();
        scalar_if_all_scalar(&args.args, Arc::new(out))
    }
}

/// The `access_denied` function, for registration.
pub fn access_denied() -> ScalarUDF {
    ScalarUDF::new_from_impl(AccessDenied {
        signature: Signature::string(1, Volatility::Immutable),
    })
}

/// `is_principal(identity, name)` written out.
pub fn principal_predicate(identity: Expr, name: Expr) -> Expr {
    use datafusion::functions::expr_fn::{regexp_like, split_part, starts_with, strpos};
    use datafusion::logical_expr::{lit, not};
    let member = |path: &[&str]| path.iter().fold(identity.clone(), |e, m| get_field(e, *m));
    let is = |path: &[&str]| member(path).eq(name.clone());
    let an_arn = starts_with(name.clone(), lit("arn:"));
    let a_key_id = regexp_like(name.clone(), lit("^[A-Z0-9]+$"), None);
    let a_bare_name = strpos(name.clone(), lit(":"))
        .eq(lit(0))
        .and(strpos(name.clone(), lit("/")).eq(lit(0)));
    let role_or_session =
        is(&["sessioncontext", "sessionissuer", "username"]).or(member(&["type"])
            .eq(lit("AssumedRole"))
            .and(split_part(member(&["arn"]), lit("/"), lit(3)).eq(name.clone())));
    an_arn
        .clone()
        .and(is(&["arn"]).or(is(&["sessioncontext", "sessionissuer", "arn"])))
        .or(not(an_arn).and(is(&["username"])))
        .or(is(&["principalid"]))
        .or(a_key_id.and(is(&["accesskeyid"])))
        .or(a_bare_name.and(role_or_session))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct IsPrincipal {
    signature: Signature,
}

impl ScalarUDFImpl for IsPrincipal {
    fn name(&self) -> &str {
        "is_principal"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        let [identity, name] = args.as_slice() else {
            return exec_err!("is_principal takes (useridentity, name)");
        };
        typed(principal_predicate(identity.clone(), name.clone()), info)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // Only reached where the planner did not simplify (the rewrite above is the usual path):
        // the same rewrite, evaluated over the arguments.
        use arrow::datatypes::{Field, Schema};
        use arrow::record_batch::RecordBatch;
        use datafusion::common::DFSchema;
        use datafusion::logical_expr::col;
        let rows = args.number_rows;
        let [identity, name] = args.args.as_slice() else {
            return exec_err!("is_principal takes (useridentity, name)");
        };
        let (identity, name) = (identity.to_array(rows)?, name.to_array(rows)?);
        let schema = Arc::new(Schema::new(vec![
            Field::new("identity", identity.data_type().clone(), true),
            Field::new("name", name.data_type().clone(), true),
        ]));
        let batch = RecordBatch::try_new(schema.clone(), vec![identity, name])?;
        let predicate = principal_predicate(col("identity"), col("name"));
        let state = datafusion::execution::session_state::SessionStateBuilder::new()
            .with_default_features()
            .build();
        let physical = state.create_physical_expr(predicate, &DFSchema::try_from(schema)?)?;
        let out = physical.evaluate(&batch)?.to_array(rows)?;
        scalar_if_all_scalar(&args.args, out)
    }
}

/// The `is_principal` function, for registration.
pub fn is_principal() -> ScalarUDF {
    ScalarUDF::new_from_impl(IsPrincipal {
        signature: Signature::any(2, Volatility::Immutable),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `resources` column: rows of (ARN or no ARN) lists, `None` for a row without the list.
    fn resources(rows: &[Option<Vec<Option<&str>>>], view: bool) -> ArrayRef {
        use arrow::array::{ListArray, StringViewArray, StructArray};
        use arrow::buffer::{NullBuffer, OffsetBuffer};
        use arrow::datatypes::Field;
        let arns: Vec<Option<&str>> = rows.iter().flatten().flatten().copied().collect();
        let arn: ArrayRef = if view {
            Arc::new(StringViewArray::from(arns.clone()))
        } else {
            Arc::new(StringArray::from(arns.clone()))
        };
        let kind: ArrayRef = Arc::new(StringArray::from(vec![Some("AWS::S3::Bucket"); arns.len()]));
        let structs = StructArray::from(vec![
            (
                Arc::new(Field::new("arn", arn.data_type().clone(), true)),
                arn,
            ),
            (Arc::new(Field::new("type", DataType::Utf8, true)), kind),
        ]);
        let lengths = rows.iter().map(|r| r.as_ref().map_or(0, Vec::len));
        let valid = NullBuffer::from(rows.iter().map(Option::is_some).collect::<Vec<_>>());
        let field = Arc::new(Field::new("item", structs.data_type().clone(), true));
        Arc::new(ListArray::new(
            field,
            OffsetBuffer::from_lengths(lengths),
            Arc::new(structs),
            Some(valid),
        ))
    }

    #[test]
    fn resource_arns_joins_each_rows_arns_by_new_lines_whatever_their_layout() {
        let rows = [
            Some(vec![Some("arn:aws:s3:::a"), None, Some("arn:aws:s3:::b")]),
            Some(vec![]),
            None,
            Some(vec![Some("arn:aws:kms:us-east-1:111122223333:key/k")]),
            Some(vec![None]),
        ];
        for view in [true, false] {
            let out = arns_text(resources(&rows, view).as_ref()).expect("arns");
            let got: Vec<Option<&str>> = out.iter().collect();
            assert_eq!(
                got,
                [
                    Some("arn:aws:s3:::a\narn:aws:s3:::b"),
                    Some(""),
                    None,
                    Some("arn:aws:kms:us-east-1:111122223333:key/k"),
                    Some(""),
                ],
                "view: {view}"
            );
        }
        let sliced = resources(&rows, true).slice(3, 2);
        let out = arns_text(sliced.as_ref()).expect("arns of a slice");
        assert_eq!(out.value(0), "arn:aws:kms:us-east-1:111122223333:key/k");
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn networks() {
        let n = |s| parse_network(s).expect("network");
        assert!(contains(n("192.0.2.0/24"), "192.0.2.200"));
        assert!(!contains(n("192.0.2.0/24"), "192.0.3.1"));
        assert!(contains(n("198.51.100.7"), "198.51.100.7"));
        assert!(!contains(n("198.51.100.7"), "198.51.100.70"));
        assert!(contains(n("0.0.0.0/0"), "8.8.8.8"));
        assert!(contains(n("2001:db8::/32"), "2001:db8:1::5"));
        assert!(!contains(n("2001:db8::/32"), "192.0.2.1"));
        assert!(!contains(n("192.0.2.0/24"), "AWS Internal"));
        assert!(parse_network("192.0.2.0/33").is_none());
        assert!(parse_network("ec2.amazonaws.com").is_none());
    }

    #[test]
    fn a_single_ipv4_address_is_planned_as_a_comparison() {
        use datafusion::logical_expr::{col, lit};
        let simplify = |network: &str| {
            let udf = cidr_match();
            let context = SimplifyContext::default();
            match udf
                .inner()
                .simplify(vec![col("sourceipaddress"), lit(network)], &context)
                .expect("simplify")
            {
                ExprSimplifyResult::Simplified(e) => Some(e.to_string()),
                ExprSimplifyResult::Original(_) => None,
            }
        };
        assert_eq!(
            simplify("203.0.113.7").as_deref(),
            Some("sourceipaddress = Utf8(\"203.0.113.7\")")
        );
        // Blocks, IPv6 (several spellings of one address) and odd spellings stay a match.
        for network in [
            "203.0.113.0/24",
            "203.0.113.7/32",
            "2001:db8::1",
            " 203.0.113.7",
        ] {
            assert_eq!(simplify(network), None, "{network}");
        }
    }

    #[tokio::test]
    async fn resource_arns_planned_through_the_arns_alone_answers_as_evaluated() {
        use datafusion::prelude::SessionContext;
        let rows = [
            Some(vec![Some("arn:aws:s3:::a"), None, Some("arn:aws:s3:::b")]),
            Some(vec![]),
            None,
            Some(vec![Some("arn:aws:kms:us-east-1:111122223333:key/k")]),
        ];
        let ctx = SessionContext::new();
        ctx.register_udf(resource_arns());
        ctx.register_udf(arns_only());
        // Plain text, as a table other than the lake's gives it (the narrowed list is views).
        let batch = arrow::record_batch::RecordBatch::try_from_iter([(
            "resources",
            resources(&rows, false),
        )])
        .expect("batch");
        ctx.register_batch("t", batch).expect("register");
        let sql = "SELECT resource_arns(resources) AS arns FROM t \
                   WHERE strpos(resource_arns(resources), 'arn:') > 0 OR resources IS NULL";
        let plan = crate::test_support::explained(&ctx, sql).await;
        assert!(plan.contains(ARNS_ONLY), "{plan}");
        assert!(
            !plan.contains(&format!("{ARNS_ONLY}({ARNS_ONLY}")),
            "narrowed twice: {plan}"
        );
        let out = ctx
            .sql(sql)
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        let got: Vec<Option<String>> = out
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(
            got,
            [
                Some("arn:aws:s3:::a\narn:aws:s3:::b".to_string()),
                None,
                Some("arn:aws:kms:us-east-1:111122223333:key/k".to_string()),
            ]
        );
        // Not a list of resources: refused in the name the user wrote.
        let refused = match ctx.sql("SELECT resource_arns(42) FROM t").await {
            Ok(df) => df.collect().await.err(),
            Err(e) => Some(e),
        }
        .expect("refused");
        assert!(
            refused.to_string().contains("resource_arns expects"),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn access_denied_planned_and_evaluated_agree() {
        use datafusion::arrow::datatypes::Field;
        use datafusion::prelude::SessionContext;
        let codes = [
            Some("AccessDenied"),
            Some("AccessDeniedException"),
            Some("Client.UnauthorizedOperation"),
            Some("UnauthorizedAccess"),
            Some("Forbidden"),
            Some("AuthorizationError"),
            Some("NotAuthorized"),
            Some("ThrottlingException"),
            Some("NoSuchBucket"),
            Some("forbidden"),
            Some("NotAuthorizedYet"),
            None,
        ];
        let expected = [
            Some(true),
            Some(true),
            Some(true),
            Some(true),
            Some(true),
            Some(true),
            Some(true),
            Some(false),
            Some(false),
            Some(false),
            Some(false),
            // No error code: not refused.
            Some(false),
        ];
        // Planned: the rewrite into LIKEs and comparisons.
        let ctx = SessionContext::new();
        ctx.register_udf(access_denied());
        let array: ArrayRef = Arc::new(StringArray::from(codes.to_vec()));
        let batch = arrow::record_batch::RecordBatch::try_from_iter([("errorcode", array.clone())])
            .expect("batch");
        ctx.register_batch("t", batch).expect("register");
        let out = ctx
            .sql("SELECT access_denied(errorcode) AS refused FROM t")
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        let planned: Vec<Option<bool>> = out
            .iter()
            .flat_map(|b| b.column(0).as_boolean().iter().collect::<Vec<_>>())
            .collect();
        assert_eq!(planned, expected);
        // Evaluated: the function itself, where nothing rewrote it.
        let evaluated = access_denied()
            .invoke_with_args(ScalarFunctionArgs {
                args: vec![ColumnarValue::Array(array)],
                arg_fields: vec![Arc::new(Field::new("errorcode", DataType::Utf8, true))],
                number_rows: codes.len(),
                return_field: Arc::new(Field::new("refused", DataType::Boolean, true)),
                config_options: Arc::default(),
            })
            .expect("invoke")
            .to_array(codes.len())
            .expect("array");
        let evaluated: Vec<Option<bool>> = evaluated.as_boolean().iter().collect();
        assert_eq!(evaluated, expected);
    }

    #[tokio::test]
    async fn is_principal_planned_and_evaluated_agree() {
        use datafusion::arrow::datatypes::Field;
        use datafusion::prelude::SessionContext;
        let ctx = SessionContext::new();
        ctx.register_udf(is_principal());
        let identity =
            |kind: &str, arn: &str, id: &str, user: &str, key: &str, issuer: (&str, &str)| {
                let text = |t: &str| {
                    if t.is_empty() {
                        "CAST(NULL AS VARCHAR)".to_string()
                    } else {
                        format!("'{t}'")
                    }
                };
                format!(
                    "named_struct('type', {}, 'arn', {}, 'principalid', {}, 'username', {}, \
                 'accesskeyid', {}, 'sessioncontext', named_struct('sessionissuer', \
                 named_struct('arn', {}, 'username', {})))",
                    text(kind),
                    text(arn),
                    text(id),
                    text(user),
                    text(key),
                    text(issuer.0),
                    text(issuer.1)
                )
            };
        let user = identity(
            "IAMUser",
            "arn:aws:iam::111122223333:user/alice",
            "AIDAEXAMPLE",
            "alice",
            "AKIAEXAMPLE",
            ("", ""),
        );
        let session = identity(
            "AssumedRole",
            "arn:aws:sts::111122223333:assumed-role/deploy/session-1",
            "AROAEXAMPLE:session-1",
            "",
            "ASIAEXAMPLE",
            ("arn:aws:iam::111122223333:role/deploy", "deploy"),
        );
        // (name, is it the user, is it the session)
        let cases = [
            ("alice", true, false),
            ("arn:aws:iam::111122223333:user/alice", true, false),
            ("AIDAEXAMPLE", true, false),
            ("AKIAEXAMPLE", true, false),
            ("deploy", false, true),
            ("session-1", false, true),
            ("arn:aws:iam::111122223333:role/deploy", false, true),
            (
                "arn:aws:sts::111122223333:assumed-role/deploy/session-1",
                false,
                true,
            ),
            ("AROAEXAMPLE:session-1", false, true),
            ("ASIAEXAMPLE", false, true),
            ("bob", false, false),
            ("arn:aws:iam::111122223333:user/bob", false, false),
            ("user/alice", false, false),
        ];
        for (name, is_user, is_session) in cases {
            let sql = format!(
                "SELECT i, n, is_principal(i, n) AS is \
                 FROM (SELECT {user} AS i UNION ALL SELECT {session}) \
                 CROSS JOIN (SELECT '{name}' AS n) ORDER BY i.type DESC"
            );
            let batches = ctx
                .sql(&sql)
                .await
                .expect("plan")
                .collect()
                .await
                .expect("run");
            let batch =
                arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("one batch");
            // NULL, as SQL gives where a member is missing, selects nothing, as false does.
            let planned: Vec<Option<bool>> = batch.column(2).as_boolean().iter().collect();
            let selected: Vec<bool> = planned.iter().map(|p| *p == Some(true)).collect();
            assert_eq!(selected, [is_user, is_session], "planned: {name}");
            let fields = batch.schema().fields().clone();
            let evaluated = is_principal()
                .invoke_with_args(ScalarFunctionArgs {
                    args: vec![
                        ColumnarValue::Array(batch.column(0).clone()),
                        ColumnarValue::Array(batch.column(1).clone()),
                    ],
                    arg_fields: vec![fields[0].clone(), fields[1].clone()],
                    number_rows: batch.num_rows(),
                    return_field: Arc::new(Field::new("is", DataType::Boolean, true)),
                    config_options: Arc::default(),
                })
                .expect("invoke")
                .to_array(batch.num_rows())
                .expect("array");
            let evaluated: Vec<Option<bool>> = evaluated.as_boolean().iter().collect();
            assert_eq!(evaluated, planned, "evaluated: {name}");
        }
    }
}
