//! Benchmark support: a generator of realistic CloudTrail trails at volume, in the S3 layout.
//!
//! The mix follows what production trails look like rather than what is easy to parse: mostly
//! read-only calls, a handful of identities doing most of the work (IAM users, assumed-role
//! sessions with their temporary keys, AWS services), free-form request/response shapes per API,
//! ~8% errors, a long tail of large records (policy documents, RunInstances responses), files
//! written out of time order, late deliveries into a later day's folder, and duplicate
//! deliveries of whole files' worth of records.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde_json::{Value, json};

/// Shape of a generated trail.
#[derive(Debug, Clone)]
pub struct TrailSpec {
    pub events: u64,
    pub files: u64,
    pub days: u32,
    pub accounts: u32,
    pub regions: u32,
    pub start: NaiveDate,
    pub seed: u64,
    /// Fraction of files delivered a second time under another name.
    pub duplicate_files: f64,
}

impl Default for TrailSpec {
    fn default() -> Self {
        Self {
            events: 2_000_000,
            files: 100_000,
            days: 90,
            accounts: 8,
            regions: 6,
            start: NaiveDate::from_ymd_opt(2026, 8, 1).unwrap_or_default(),
            seed: 7,
            duplicate_files: 0.01,
        }
    }
}

const REGIONS: [&str; 8] = [
    "us-east-1",
    "eu-west-1",
    "us-west-2",
    "ap-southeast-2",
    "eu-central-1",
    "ap-northeast-1",
    "sa-east-1",
    "ca-central-1",
];

/// What the generator wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct Generated {
    pub files: u64,
    pub events: u64,
    /// Events delivered twice (the same record in two files).
    pub duplicate_events: u64,
    pub json_bytes: u64,
    pub gzip_bytes: u64,
}

/// Writes the trail under `root` (`root/AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/`).
pub fn generate(spec: &TrailSpec, root: &Path) -> std::io::Result<Generated> {
    let per_file = (spec.events / spec.files.max(1)).max(1);
    let results: Vec<std::io::Result<Generated>> = (0..spec.files)
        .into_par_iter()
        .map(|i| {
            let mut rng =
                SmallRng::seed_from_u64(spec.seed ^ (i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
            let account = format!(
                "{:012}",
                100_000_000_000u64 + (i % spec.accounts as u64) * 1_111_111
            );
            let region = REGIONS[((i / spec.accounts as u64) % spec.regions as u64) as usize];
            let day = spec.start + Duration::days(rng.random_range(0..spec.days as i64));
            // Files vary in size: most are small, some are big.
            let n = if rng.random_bool(0.05) {
                per_file * 6
            } else {
                (per_file * 3 / 4).max(1)
            };
            let n = n.min(spec.events);
            let base_secs = day
                .and_hms_opt(0, 0, 0)
                .map(|d| d.and_utc().timestamp())
                .unwrap_or(0);
            let mut records = Vec::with_capacity(n as usize);
            for j in 0..n {
                let t = base_secs + rng.random_range(0..86_400);
                records.push(record(&mut rng, i * 10_000 + j, &account, region, t));
            }
            let latest = records
                .iter()
                .filter_map(|r| r["eventTime"].as_str())
                .max()
                .unwrap_or("")
                .to_string();
            // Delivery is up to 15 minutes after the newest event: near midnight, that is the
            // next day's folder.
            let delivered = chrono::DateTime::parse_from_rfc3339(&latest)
                .map(|t| t.with_timezone(&Utc) + Duration::minutes(rng.random_range(1..15)))
                .unwrap_or_else(|_| Utc.timestamp_opt(base_secs, 0).single().unwrap_or_default());
            let body = serde_json::to_vec(&json!({ "Records": records }))?;
            let mut g = Generated {
                files: 1,
                events: n,
                ..Default::default()
            };
            g.json_bytes += body.len() as u64;
            g.gzip_bytes += write_file(root, &account, region, delivered, &mut rng, &body)?;
            if rng.random_bool(spec.duplicate_files) {
                let later = delivered + Duration::hours(rng.random_range(1..30));
                g.gzip_bytes += write_file(root, &account, region, later, &mut rng, &body)?;
                g.files += 1;
                g.duplicate_events += n;
                g.json_bytes += body.len() as u64;
            }
            Ok(g)
        })
        .collect();
    let mut total = Generated::default();
    for r in results {
        let g = r?;
        total.files += g.files;
        total.events += g.events;
        total.duplicate_events += g.duplicate_events;
        total.json_bytes += g.json_bytes;
        total.gzip_bytes += g.gzip_bytes;
    }
    Ok(total)
}

fn write_file(
    root: &Path,
    account: &str,
    region: &str,
    delivered: chrono::DateTime<Utc>,
    rng: &mut SmallRng,
    body: &[u8],
) -> std::io::Result<u64> {
    let dir: PathBuf = root
        .join("AWSLogs")
        .join(account)
        .join("CloudTrail")
        .join(region)
        .join(delivered.format("%Y/%m/%d").to_string());
    fs::create_dir_all(&dir)?;
    let suffix: String = (0..16)
        .map(|_| {
            let c = rng.random_range(0..62u8);
            (match c {
                0..=9 => b'0' + c,
                10..=35 => b'a' + c - 10,
                _ => b'A' + c - 36,
            }) as char
        })
        .collect();
    let name = format!(
        "{account}_CloudTrail_{region}_{}_{suffix}.json.gz",
        delivered.format("%Y%m%dT%H%MZ")
    );
    let mut enc = GzEncoder::new(Vec::with_capacity(body.len() / 8), Compression::new(6));
    enc.write_all(body)?;
    let gz = enc.finish()?;
    fs::write(dir.join(name), &gz)?;
    Ok(gz.len() as u64)
}

fn uuid(rng: &mut SmallRng) -> String {
    let a: u128 = rng.random();
    let h = format!("{a:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// Who made a call. STS calls come from IAM users (long-term keys), as role sessions mostly do
/// in practice; the sessions' temporary keys are the ones those calls minted (ASIA0…ASIA4999).
fn identity(rng: &mut SmallRng, account: &str, sts_call: bool) -> (Value, &'static str) {
    let roll = if sts_call {
        0
    } else {
        rng.random_range(0..100)
    };
    if roll < 30 {
        let u = ["alice", "bob", "carol", "deploy-bot", "ci-runner"][rng.random_range(0..5)];
        (
            json!({"type":"IAMUser","principalId":format!("AIDA{}", u.to_uppercase()),"arn":format!("arn:aws:iam::{account}:user/{u}"),
                   "accountId":account,"accessKeyId":format!("AKIA{:016}", rng.random_range(0..20u32)),"userName":u}),
            "aws-cli/2.17.0 Python/3.11.6 Linux/6.1 exe/x86_64",
        )
    } else if roll < 80 {
        let role =
            ["Admin", "ReadOnly", "DataPipeline", "LambdaExec", "EKSNode"][rng.random_range(0..5)];
        let session = format!("session-{}", rng.random_range(0..500));
        (
            json!({"type":"AssumedRole","principalId":format!("AROA{}:{session}", role.to_uppercase()),
                   "arn":format!("arn:aws:sts::{account}:assumed-role/{role}/{session}"),"accountId":account,
                   "accessKeyId":format!("ASIA{:016}", rng.random_range(0..5000u32)),
                   "sessionContext":{"sessionIssuer":{"type":"Role","principalId":format!("AROA{}", role.to_uppercase()),
                        "arn":format!("arn:aws:iam::{account}:role/{role}"),"accountId":account,"userName":role},
                        "webIdFederationData":{},"attributes":{"creationDate":"2026-08-01T00:00:00Z","mfaAuthenticated":"false"}}}),
            "Boto3/1.35.0 md/Botocore#1.35.0 ua/2.0 os/linux#6.1 lang/python#3.12.4",
        )
    } else {
        let svc = [
            "ec2.amazonaws.com",
            "lambda.amazonaws.com",
            "cloudformation.amazonaws.com",
            "config.amazonaws.com",
        ][rng.random_range(0..4)];
        (json!({"type":"AWSService","invokedBy":svc}), "AWS Internal")
    }
}

fn record(rng: &mut SmallRng, n: u64, account: &str, region: &str, secs: i64) -> Value {
    let roll = rng.random_range(0..100);
    let (ident, ua) = identity(rng, account, (50..=57).contains(&roll));
    let time = Utc
        .timestamp_opt(secs, 0)
        .single()
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let bucket = format!("bucket-{}", rng.random_range(0..300));
    let (source, name, req, resp, resources): (&str, &str, Value, Value, Value) = match roll {
        0..=24 => (
            "ec2.amazonaws.com",
            "DescribeInstances",
            json!({"instancesSet":{},"filterSet":{"items":[{"name":"tag:env","valueSet":{"items":[{"value":"prod"}]}}]}}),
            Value::Null,
            Value::Null,
        ),
        25..=39 => (
            "s3.amazonaws.com",
            "GetObject",
            json!({"bucketName":bucket,"key":format!("data/{}/part-{}.parquet", rng.random_range(0..1000), rng.random_range(0..64)),"Host":format!("{bucket}.s3.{region}.amazonaws.com")}),
            Value::Null,
            json!([{"type":"AWS::S3::Object","ARN":format!("arn:aws:s3:::{bucket}/data")},{"accountId":account,"type":"AWS::S3::Bucket","ARN":format!("arn:aws:s3:::{bucket}")}]),
        ),
        40..=49 => (
            "kms.amazonaws.com",
            "Decrypt",
            json!({"encryptionAlgorithm":"SYMMETRIC_DEFAULT","encryptionContext":{"aws:s3:arn":format!("arn:aws:s3:::{bucket}")}}),
            Value::Null,
            json!([{"accountId":account,"type":"AWS::KMS::Key","ARN":format!("arn:aws:kms:{region}:{account}:key/{}", uuid(rng))}]),
        ),
        50..=57 => (
            "sts.amazonaws.com",
            "AssumeRole",
            json!({"roleArn":format!("arn:aws:iam::{account}:role/DataPipeline"),"roleSessionName":format!("session-{}", rng.random_range(0..500)),"durationSeconds":3600}),
            json!({"credentials":{"accessKeyId":format!("ASIA{:016}", rng.random_range(0..5000u32)),"sessionToken":"IQoJb3JpZ2luX2VjEXAMPLETOKEN","expiration":"Oct 2, 2026, 11:12:29 PM"},
                           "assumedRoleUser":{"assumedRoleId":"AROADATAPIPELINE:session","arn":format!("arn:aws:sts::{account}:assumed-role/DataPipeline/session")}}),
            json!([{"accountId":account,"type":"AWS::IAM::Role","ARN":format!("arn:aws:iam::{account}:role/DataPipeline")}]),
        ),
        58..=69 => (
            "logs.amazonaws.com",
            "PutLogEvents",
            json!({"logGroupName":"/aws/lambda/api","logStreamName":uuid(rng)}),
            Value::Null,
            Value::Null,
        ),
        70..=77 => (
            "dynamodb.amazonaws.com",
            "Query",
            json!({"tableName":"orders","limit":rng.random_range(1..500),"consistentRead":false,"scanIndexForward":true}),
            Value::Null,
            Value::Null,
        ),
        78..=84 => (
            "iam.amazonaws.com",
            "ListRoles",
            json!({"maxItems":100}),
            Value::Null,
            Value::Null,
        ),
        85..=90 => (
            "lambda.amazonaws.com",
            "Invoke",
            json!({"functionName":format!("arn:aws:lambda:{region}:{account}:function:api-{}", rng.random_range(0..20))}),
            Value::Null,
            Value::Null,
        ),
        91..=94 => (
            "iam.amazonaws.com",
            "PutRolePolicy",
            json!({"roleName":"DataPipeline","policyName":"inline","policyDocument":large_policy(rng)}),
            Value::Null,
            Value::Null,
        ),
        95..=97 => (
            "ec2.amazonaws.com",
            "RunInstances",
            json!({"instancesSet":{"items":[{"imageId":"ami-0abcdef1234567890","minCount":1,"maxCount":1}]},"instanceType":"m7g.large"}),
            large_run_instances(rng),
            Value::Null,
        ),
        _ => (
            "s3.amazonaws.com",
            "DeleteBucket",
            json!({"bucketName":bucket,"Host":format!("{bucket}.s3.amazonaws.com")}),
            Value::Null,
            json!([{"accountId":account,"type":"AWS::S3::Bucket","ARN":format!("arn:aws:s3:::{bucket}")}]),
        ),
    };
    let read_only = name.starts_with("Describe")
        || name.starts_with("List")
        || name.starts_with("Get")
        || name == "Decrypt"
        || name == "Query";
    let mut r = json!({
        "eventVersion":"1.11","userIdentity":ident,"eventTime":time,"eventSource":source,"eventName":name,
        "awsRegion":region,"sourceIPAddress":format!("198.51.{}.{}", rng.random_range(0..255), rng.random_range(1..255)),
        "userAgent":ua,"requestParameters":req,"responseElements":resp,"requestID":uuid(rng),"eventID":uuid(rng),
        "readOnly":read_only,"eventType":"AwsApiCall","managementEvent":!matches!(name, "GetObject" | "Invoke" | "Query" | "PutLogEvents"),
        "recipientAccountId":account,"eventCategory":if matches!(name, "GetObject" | "Invoke" | "Query" | "PutLogEvents") {"Data"} else {"Management"},
        "tlsDetails":{"tlsVersion":if rng.random_bool(0.02) {"TLSv1.1"} else {"TLSv1.3"},"cipherSuite":"TLS_AES_128_GCM_SHA256",
                      "clientProvidedHostHeader":format!("{}.{region}.amazonaws.com", source.split('.').next().unwrap_or("api"))},
        "sessionCredentialFromConsole": null,
    });
    if let Some(obj) = r.as_object_mut() {
        obj.remove("sessionCredentialFromConsole");
        if !resources.is_null() {
            obj.insert("resources".into(), resources);
        }
        if rng.random_bool(0.08) {
            obj.insert("errorCode".into(), json!("AccessDenied"));
            obj.insert(
                "errorMessage".into(),
                json!(format!("User is not authorized to perform: {}", name)),
            );
        }
        if rng.random_bool(0.1) {
            obj.insert(
                "vpcEndpointId".into(),
                json!(format!("vpce-{:017x}", rng.random_range(0..1u64 << 40))),
            );
        }
        let _ = n;
    }
    r
}

fn large_policy(rng: &mut SmallRng) -> String {
    let statements: Vec<Value> = (0..rng.random_range(5..60))
        .map(|i| json!({"Sid":format!("S{i}"),"Effect":"Allow","Action":["s3:GetObject","s3:PutObject","kms:Decrypt"],
                        "Resource":[format!("arn:aws:s3:::bucket-{i}/*")]}))
        .collect();
    json!({"Version":"2012-10-17","Statement":statements}).to_string()
}

fn large_run_instances(rng: &mut SmallRng) -> Value {
    let items: Vec<Value> = (0..rng.random_range(1..12))
        .map(|i| json!({"instanceId":format!("i-{:017x}", i),"imageId":"ami-0abcdef1234567890","instanceState":{"code":0,"name":"pending"},
                        "privateDnsName":"ip-10-0-0-1.ec2.internal","amiLaunchIndex":i,"productCodes":{},"instanceType":"m7g.large",
                        "launchTime":1_700_000_000_000u64,"placement":{"availabilityZone":"us-east-1a","tenancy":"default"},
                        "monitoring":{"state":"disabled"},"subnetId":"subnet-0123456789abcdef0","vpcId":"vpc-0123456789abcdef0",
                        "privateIpAddress":"10.0.0.1","stateReason":{"code":"pending","message":"pending"},"architecture":"arm64",
                        "rootDeviceType":"ebs","rootDeviceName":"/dev/xvda","blockDeviceMapping":{},"virtualizationType":"hvm",
                        "hypervisor":"xen","groupSet":{"items":[{"groupId":"sg-0123456789abcdef0","groupName":"default"}]},
                        "networkInterfaceSet":{"items":[{"networkInterfaceId":"eni-0123456789abcdef0","subnetId":"subnet-0123456789abcdef0"}]}}))
        .collect();
    json!({"reservationId":"r-0123456789abcdef0","ownerId":"111122223333","groupSet":{},"instancesSet":{"items":items}})
}
