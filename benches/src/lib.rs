//! Benchmark support: a generator of CloudTrail trails shaped like production ones, in the S3
//! layout, at volume.
//!
//! Two shapes ([`Shape`]): an account trail (3 accounts × 17 regions, 90 days: 1,530 (day, region)
//! partitions) and an organization trail (60 member accounts under `AWSLogs/o-…/`, 30 regions).
//! Both follow what real trails look like rather than what is easy to parse or query:
//!
//! - volume is lopsided: a few busy accounts, `us-east-1` (global services) and a home region
//!   carry most calls, every other region a trickle of background calls; weekdays and business
//!   hours are busier;
//! - ~12 % of events are `sts:AssumeRole` calls by AWS services for their roles (Lambda, EC2
//!   instance profiles, ECS tasks): each mints a new temporary key, which the workload then signs
//!   its calls with until it refreshes — hundreds of thousands of distinct keys;
//! - people: IAM users with long-term keys, console sign-ins (some without MFA, some failing),
//!   SAML federation, role chaining and cross-account role assumption (logged in both accounts);
//! - CloudTrail's mix: mostly read-only calls, data events (S3 objects, DynamoDB items, Lambda
//!   invokes), ~6 % errors, most calls not made through a VPC endpoint, TLS 1.3 mostly, rare
//!   writes of every kind the CIS controls watch (security groups, IAM policies, trails, KMS keys,
//!   routes, gateways, bucket policies), rare deletions, large records (policy documents,
//!   RunInstances responses);
//! - delivery: one file per account and region about every 5 minutes while there are events,
//!   named and foldered by delivery time (so events near midnight land in the next day's folder),
//!   and a few files delivered twice.

pub mod cpu;
pub mod fuzz;
pub mod s3_server;
pub mod signed;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use flate2::Compression;
use flate2::write::GzEncoder;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde_json::{Value, json};

/// The kind of trail to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A multi-region account trail: 3 accounts, the 17 default regions.
    Trail,
    /// An organization trail: 60 member accounts, 30 regions, `AWSLogs/<org id>/<account>/…`.
    Org,
}

impl std::str::FromStr for Shape {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "trail" => Ok(Shape::Trail),
            "org" => Ok(Shape::Org),
            _ => Err(format!("unknown shape `{s}` (trail or org)")),
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    pub shape: Shape,
    /// Events to generate (approximately: each stream's count is drawn around its share).
    pub events: u64,
    pub days: u32,
    pub accounts: u32,
    pub regions: u32,
    pub start: NaiveDate,
    pub seed: u64,
    /// Average events per delivered file, for busy streams (a quiet stream still gets one file
    /// per 5-minute window with events).
    pub events_per_file: u32,
    /// Fraction of files delivered a second time under another name.
    pub duplicate_files: f64,
}

impl Spec {
    pub fn new(shape: Shape, events: u64) -> Self {
        let (accounts, regions) = match shape {
            Shape::Trail => (3, 17),
            Shape::Org => (60, 30),
        };
        Self {
            shape,
            events,
            days: 90,
            accounts,
            regions,
            start: NaiveDate::from_ymd_opt(2026, 8, 1).unwrap_or_default(),
            seed: 7,
            events_per_file: 25,
            duplicate_files: 0.005,
        }
    }

    fn org_id(&self) -> Option<&'static str> {
        (self.shape == Shape::Org).then_some("o-a1b2c3d4e5")
    }
}

/// The 17 regions enabled by default, then opt-in regions.
const REGIONS: [&str; 30] = [
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "us-east-2",
    "eu-central-1",
    "ap-southeast-2",
    "ap-northeast-1",
    "us-west-1",
    "ca-central-1",
    "eu-west-2",
    "eu-west-3",
    "eu-north-1",
    "ap-south-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "sa-east-1",
    "af-south-1",
    "ap-east-1",
    "me-south-1",
    "eu-south-1",
    "ap-southeast-3",
    "me-central-1",
    "eu-central-2",
    "ap-south-2",
    "eu-south-2",
    "ap-southeast-4",
    "il-central-1",
    "ca-west-1",
    "mx-central-1",
];

/// What the generator wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct Generated {
    pub files: u64,
    pub events: u64,
    /// Events delivered twice (the same record in two files).
    pub duplicate_events: u64,
    /// Temporary keys minted by STS calls.
    pub minted_keys: u64,
    pub json_bytes: u64,
    pub gzip_bytes: u64,
}

impl Generated {
    fn add(&mut self, o: Generated) {
        self.files += o.files;
        self.events += o.events;
        self.duplicate_events += o.duplicate_events;
        self.minted_keys += o.minted_keys;
        self.json_bytes += o.json_bytes;
        self.gzip_bytes += o.gzip_bytes;
    }
}

fn account_id(i: u32) -> String {
    format!("{:012}", 210_000_000_000u64 + u64::from(i) * 7_919_113)
}

/// Share of the trail's events per account: a few busy accounts, a long tail.
fn account_weights(n: u32) -> Vec<f64> {
    let w: Vec<f64> = (0..n).map(|i| 1.0 / f64::from(i + 1).powf(0.9)).collect();
    let sum: f64 = w.iter().sum();
    w.into_iter().map(|x| x / sum).collect()
}

/// Share of an account's events per region: `us-east-1` (global services) and the account's home
/// region are busy, the others see background calls only.
fn region_weights(account: u32, regions: u32) -> Vec<f64> {
    let n = regions as usize;
    let home = 1 + (account as usize % 4).min(n.saturating_sub(1));
    let mut w = vec![0.3 / (n as f64 - 2.0).max(1.0); n];
    w[0] = 0.35;
    if home < n {
        w[home] = 0.35;
    }
    let sum: f64 = w.iter().sum();
    w.into_iter().map(|x| x / sum).collect()
}

fn day_weight(day: NaiveDate) -> f64 {
    match day.weekday() {
        Weekday::Sat | Weekday::Sun => 0.6,
        _ => 1.0,
    }
}

/// Writes the trail under `root` in the S3 layout; deterministic for a spec.
pub fn generate(spec: &Spec, root: &Path) -> std::io::Result<Generated> {
    let accounts = account_weights(spec.accounts);
    let days: Vec<NaiveDate> = (0..spec.days)
        .map(|d| spec.start + Duration::days(i64::from(d)))
        .collect();
    let day_sum: f64 = days.iter().map(|d| day_weight(*d)).sum();
    let tasks: Vec<(u32, NaiveDate)> = (0..spec.accounts)
        .flat_map(|a| days.iter().map(move |d| (a, *d)))
        .collect();
    let results: Vec<std::io::Result<Generated>> = tasks
        .par_iter()
        .map(|&(a, day)| {
            let expected = spec.events as f64 * accounts[a as usize] * day_weight(day) / day_sum;
            AccountDay::new(spec, a, day, expected).write(root)
        })
        .collect();
    let mut total = Generated::default();
    for r in results {
        total.add(r?);
    }
    Ok(total)
}

/// A workload that runs under a service role and refreshes its temporary credentials.
struct Workload {
    service: &'static str,
    role: String,
    session: String,
    key: Option<(String, i64)>,
    lifetime: i64,
}

/// A person's session: an IAM user's long-term key, or a role session they assumed.
struct Person {
    user: String,
    key: String,
    /// A role session obtained by AssumeRole (or SAML): key, session ARN, role, expiry.
    session: Option<(String, String, String, i64)>,
}

/// The events of one account on one day, in every region.
struct AccountDay<'a> {
    spec: &'a Spec,
    account: String,
    /// The account's index (0 is the organization's management/security account).
    index: u32,
    day: NaiveDate,
    expected: f64,
    rng: SmallRng,
    minted: u64,
    serial: u64,
}

/// A generated record and the region stream it belongs to.
struct Event {
    time: i64,
    record: Value,
}

/// Services that assume roles for workloads, and how long their credentials last.
const SERVICES: [(&str, &str, i64); 3] = [
    ("lambda.amazonaws.com", "lambda", 3 * 3600),
    ("ec2.amazonaws.com", "ec2", 6 * 3600),
    ("ecs-tasks.amazonaws.com", "ecs", 6 * 3600),
];

const USERS: [&str; 6] = ["alice", "bob", "carol", "deploy-bot", "ci-runner", "dave"];

impl<'a> AccountDay<'a> {
    fn new(spec: &'a Spec, index: u32, day: NaiveDate, expected: f64) -> Self {
        let seed = spec.seed
            ^ (u64::from(index).wrapping_mul(0x9E37_79B9_7F4A_7C15))
            ^ (day.num_days_from_ce() as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        Self {
            spec,
            account: account_id(index),
            index,
            day,
            expected,
            rng: SmallRng::seed_from_u64(seed),
            minted: 0,
            serial: 0,
        }
    }

    /// A new unique id of `len` upper-case letters and digits.
    fn unique(&mut self, len: usize) -> String {
        self.serial += 1;
        let mut x = (u64::from(self.index) << 40)
            ^ (u64::from(self.day.num_days_from_ce() as u32) << 20)
            ^ self.serial
            ^ self.spec.seed.rotate_left(17);
        let mut out = String::with_capacity(len);
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        for i in 0..len {
            // splitmix64: a bijection, so distinct serials give distinct ids.
            if i % 12 == 0 {
                x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = x;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                x = z ^ (z >> 31);
            }
            out.push(ALPHABET[((x >> ((i % 12) * 5)) & 31) as usize] as char);
        }
        out
    }

    fn uuid(&mut self) -> String {
        let a: u128 = self.rng.random();
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

    fn write(mut self, root: &Path) -> std::io::Result<Generated> {
        let regions = region_weights(self.index, self.spec.regions);
        let mut out = Generated::default();
        for (r, weight) in regions.iter().enumerate() {
            let region = REGIONS[r % REGIONS.len()];
            let mean = self.expected * weight;
            let n = mean.floor() as u64 + u64::from(self.rng.random_bool(mean.fract()));
            if n == 0 {
                continue;
            }
            let events = self.region_events(region, n);
            out.add(self.deliver(root, region, events)?);
        }
        out.minted_keys = self.minted;
        Ok(out)
    }

    /// Seconds into the day, busier in business hours.
    fn time_of_day(&mut self) -> i64 {
        let hour = if self.rng.random_bool(0.65) {
            self.rng.random_range(8..19)
        } else {
            self.rng.random_range(0..24)
        };
        hour * 3600 + self.rng.random_range(0..3600)
    }

    fn region_events(&mut self, region: &'static str, n: u64) -> Vec<Event> {
        let base = self
            .day
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp())
            .unwrap_or(0);
        let mut times: Vec<i64> = (0..n).map(|_| base + self.time_of_day()).collect();
        times.sort_unstable();
        let busy = n > 200;
        let day = self.day.num_days_from_ce() as u64;
        let pool = ((n / 150) as usize).clamp(2, 400);
        let mut workloads: Vec<Workload> = (0..pool)
            .map(|i| {
                let (service, short, lifetime) = SERVICES[i % SERVICES.len()];
                let role = format!(
                    "{short}-{}-role",
                    ["orders", "billing", "ingest", "web", "etl"][i % 5]
                );
                let session = match short {
                    "lambda" => format!(
                        "fn-{}-{}",
                        ["orders", "billing", "ingest", "web", "etl"][i % 5],
                        i
                    ),
                    // Instances are replaced every few days, tasks every day.
                    "ec2" => format!(
                        "i-{:017x}",
                        (u64::from(self.index) << 32) ^ (i as u64 * 7_777) ^ ((day / 3) << 44)
                    ),
                    _ => format!(
                        "{:032x}",
                        (u128::from(self.index) << 48)
                            ^ (i as u128 * 1_234_567)
                            ^ (u128::from(day) << 80)
                    ),
                };
                Workload {
                    service,
                    role,
                    session,
                    key: None,
                    lifetime,
                }
            })
            .collect();
        let mut people: Vec<Person> = USERS
            .iter()
            .enumerate()
            .map(|(i, u)| Person {
                user: (*u).to_string(),
                key: format!("AKIA{:016}", u64::from(self.index) * 100 + i as u64),
                session: None,
            })
            .collect();
        let mut out = Vec::with_capacity(n as usize);
        for t in times {
            let roll: f64 = self.rng.random();
            let record = if !busy && roll < 0.55 {
                // Quiet regions: mostly services looking around (Config, Security Hub, ...).
                self.background(region, t)
            } else if roll < 0.095 {
                let w = self.rng.random_range(0..workloads.len());
                self.service_assume_role(region, t, &mut workloads[w])
            } else if roll < 0.60 {
                let w = self.rng.random_range(0..workloads.len());
                if workloads[w].key.as_ref().is_none_or(|(_, exp)| *exp <= t) {
                    self.service_assume_role(region, t, &mut workloads[w])
                } else {
                    self.workload_call(region, t, &workloads[w])
                }
            } else if roll < 0.78 {
                self.background(region, t)
            } else if roll < 0.93 {
                let p = self.rng.random_range(0..people.len());
                self.person_call(region, t, &mut people[p])
            } else if roll < 0.985 {
                self.data_event(region, t, &workloads)
            } else {
                self.rare(region, t, &mut people)
            };
            out.push(Event { time: t, record });
        }
        out
    }

    /// The fields every record has.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        region: &str,
        t: i64,
        identity: Value,
        source: &str,
        name: &str,
        ip: &str,
        agent: &str,
        request: Value,
        response: Value,
        may_fail: bool,
    ) -> Value {
        let read_only = [
            "Describe", "List", "Get", "Head", "Lookup", "Query", "Scan", "Decrypt", "Select",
        ]
        .iter()
        .any(|p| name.starts_with(p))
            || name == "AssumeRole";
        let data = matches!(
            name,
            "GetObject"
                | "PutObject"
                | "GetItem"
                | "PutItem"
                | "Query"
                | "Invoke"
                | "BatchGetItem"
                | "HeadObject"
        );
        let time = Utc
            .timestamp_opt(t, 0)
            .single()
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let tls = match self.rng.random_range(0..100) {
            0 => "TLSv1",
            1..=2 => "TLSv1.1",
            3..=20 => "TLSv1.2",
            _ => "TLSv1.3",
        };
        let host = format!(
            "{}.{region}.amazonaws.com",
            source.split('.').next().unwrap_or("api")
        );
        let mut r = json!({
            "eventVersion": "1.11",
            "userIdentity": identity,
            "eventTime": time,
            "eventSource": source,
            "eventName": name,
            "awsRegion": region,
            "sourceIPAddress": ip,
            "userAgent": agent,
            "requestParameters": request,
            "responseElements": response,
            "requestID": self.uuid(),
            "eventID": self.uuid(),
            "readOnly": read_only,
            "eventType": "AwsApiCall",
            "managementEvent": !data,
            "recipientAccountId": self.account,
            "eventCategory": if data { "Data" } else { "Management" },
            "tlsDetails": {
                "tlsVersion": tls,
                "cipherSuite": if tls == "TLSv1.3" { "TLS_AES_128_GCM_SHA256" } else { "ECDHE-RSA-AES128-GCM-SHA256" },
                "clientProvidedHostHeader": host,
            },
        });
        if let Some(o) = r.as_object_mut() {
            // Errors: throttling and missing resources for reads, denials for anything.
            if may_fail && self.rng.random_bool(0.06) {
                let (code, message) = match self.rng.random_range(0..10) {
                    0..=4 => (
                        "AccessDenied",
                        format!("User is not authorized to perform: {name}"),
                    ),
                    5..=6 => ("ThrottlingException", "Rate exceeded".to_string()),
                    7 => (
                        "Client.UnauthorizedOperation",
                        "You are not authorized to perform this operation.".to_string(),
                    ),
                    _ => (
                        "ResourceNotFoundException",
                        "Requested resource not found".to_string(),
                    ),
                };
                o.insert("errorCode".into(), json!(code));
                o.insert("errorMessage".into(), json!(message));
                o.insert("responseElements".into(), Value::Null);
            }
        }
        r
    }

    fn service_assume_role(&mut self, region: &str, t: i64, w: &mut Workload) -> Value {
        let key = format!("ASIA{}", self.unique(16));
        self.minted += 1;
        w.key = Some((key.clone(), t + w.lifetime - 300));
        let role_arn = format!("arn:aws:iam::{}:role/{}", self.account, w.role);
        let session_arn = format!(
            "arn:aws:sts::{}:assumed-role/{}/{}",
            self.account, w.role, w.session
        );
        let role_id = format!("AROA{}", self.unique(17));
        let identity = json!({"type": "AWSService", "invokedBy": w.service});
        let request = json!({"roleArn": role_arn, "roleSessionName": w.session, "durationSeconds": w.lifetime});
        let expiration = Utc
            .timestamp_opt(t + w.lifetime, 0)
            .single()
            .unwrap_or_default()
            .format("%b %-d, %Y, %-I:%M:%S %p")
            .to_string();
        let response = json!({
            "credentials": {"accessKeyId": key, "sessionToken": "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCXVzLWVhc3QtMSJHMEUCIQ", "expiration": expiration},
            "assumedRoleUser": {"assumedRoleId": format!("{role_id}:{}", w.session), "arn": session_arn},
        });
        let mut r = self.record(
            region,
            t,
            identity,
            "sts.amazonaws.com",
            "AssumeRole",
            w.service,
            w.service,
            request,
            response,
            false,
        );
        if let Some(o) = r.as_object_mut() {
            o.insert(
                "resources".into(),
                json!([{"accountId": self.account, "type": "AWS::IAM::Role", "ARN": role_arn}]),
            );
            o.insert("sharedEventID".into(), json!(self.uuid()));
        }
        r
    }

    fn session_identity(
        &mut self,
        role: &str,
        session: &str,
        key: &str,
        created: i64,
        extra: Value,
    ) -> Value {
        let created = Utc
            .timestamp_opt(created, 0)
            .single()
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let mut v = json!({
            "type": "AssumedRole",
            "principalId": format!("AROA{}:{session}", role.to_uppercase().replace('-', "")),
            "arn": format!("arn:aws:sts::{}:assumed-role/{role}/{session}", self.account),
            "accountId": self.account,
            "accessKeyId": key,
            "sessionContext": {
                "sessionIssuer": {"type": "Role", "principalId": format!("AROA{}", role.to_uppercase().replace('-', "")),
                    "arn": format!("arn:aws:iam::{}:role/{role}", self.account), "accountId": self.account, "userName": role},
                "webIdFederationData": {},
                "attributes": {"creationDate": created, "mfaAuthenticated": "false"},
            },
        });
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in e {
                o.insert(k.clone(), x.clone());
            }
        }
        v
    }

    fn workload_call(&mut self, region: &str, t: i64, w: &Workload) -> Value {
        let Some((key, expires)) = w.key.clone() else {
            return self.background(region, t);
        };
        let identity = self.session_identity(
            &w.role,
            &w.session,
            &key,
            expires - w.lifetime + 300,
            json!({}),
        );
        let bucket = format!(
            "{}-{}-data",
            w.role.split('-').nth(1).unwrap_or("app"),
            self.account
        );
        let (source, name, request, resources) = match self.rng.random_range(0..10) {
            0..=2 => (
                "dynamodb.amazonaws.com",
                "GetItem",
                json!({"tableName": "orders", "key": {"id": {"S": self.uuid()}}}),
                Value::Null,
            ),
            3 => (
                "dynamodb.amazonaws.com",
                "PutItem",
                json!({"tableName": "orders"}),
                Value::Null,
            ),
            4..=5 => (
                "s3.amazonaws.com",
                "GetObject",
                json!({"bucketName": bucket, "key": format!("in/{}.json", self.rng.random_range(0..100_000)), "Host": format!("{bucket}.s3.{region}.amazonaws.com")}),
                json!([{"type": "AWS::S3::Object", "ARN": format!("arn:aws:s3:::{bucket}/in")}, {"accountId": self.account, "type": "AWS::S3::Bucket", "ARN": format!("arn:aws:s3:::{bucket}")}]),
            ),
            6 => (
                "kms.amazonaws.com",
                "Decrypt",
                json!({"encryptionAlgorithm": "SYMMETRIC_DEFAULT", "encryptionContext": {"aws:lambda:FunctionArn": format!("arn:aws:lambda:{region}:{}:function:{}", self.account, w.session)}}),
                json!([{"accountId": self.account, "type": "AWS::KMS::Key", "ARN": format!("arn:aws:kms:{region}:{}:key/{}", self.account, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")}]),
            ),
            7 => (
                "secretsmanager.amazonaws.com",
                "GetSecretValue",
                json!({"secretId": format!("prod/{}/db", w.role)}),
                Value::Null,
            ),
            8 => (
                "ssm.amazonaws.com",
                "GetParameters",
                json!({"names": ["/app/config", "/app/flags"], "withDecryption": true}),
                Value::Null,
            ),
            _ => (
                "ec2.amazonaws.com",
                "DescribeInstances",
                json!({"instancesSet": {}, "filterSet": {}}),
                Value::Null,
            ),
        };
        let via_endpoint = self.rng.random_bool(0.12)
            && matches!(source, "s3.amazonaws.com" | "dynamodb.amazonaws.com");
        // A workload keeps its addresses: an instance its own, Lambda and ECS tasks the few NAT
        // gateway addresses of the account and region.
        let session_hash = w.session.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let h = derived_key(&[
            self.spec.seed,
            u64::from(self.index),
            region_number(region),
            session_hash,
        ]);
        let h: Vec<u8> = h.bytes().collect();
        let pick = |i: usize| u32::from(h[4 + i % 16]);
        let ip = if via_endpoint {
            format!("10.{}.{}.{}", self.index % 250, pick(0), 1 + pick(1) % 254)
        } else if w.service == "ec2.amazonaws.com" {
            format!(
                "{}.{}.{}.{}",
                [3, 18, 34, 52, 54][(pick(2) % 5) as usize],
                pick(3),
                pick(4),
                1 + pick(5) % 254
            )
        } else {
            let nat = self.rng.random_range(0..3u32);
            format!(
                "{}.{}.{}.{}",
                [3, 18, 34, 52, 54][(pick(2) % 5) as usize],
                pick(6),
                10 + nat,
                1 + pick(7) % 254
            )
        };
        let agent = match w.service {
            "lambda.amazonaws.com" => {
                "aws-sdk-js/3.600.0 ua/2.0 os/linux lang/js md/nodejs#20.14.0 api/dynamodb#3.600.0 exec-env/AWS_Lambda_nodejs20.x"
            }
            _ => "Boto3/1.35.0 md/Botocore#1.35.0 ua/2.0 os/linux#6.1 lang/python#3.12.4",
        };
        let mut r = self.record(
            region,
            t,
            identity,
            source,
            name,
            &ip,
            agent,
            request,
            Value::Null,
            true,
        );
        if let Some(o) = r.as_object_mut() {
            if !resources.is_null() {
                o.insert("resources".into(), resources);
            }
            if via_endpoint {
                o.insert(
                    "vpcEndpointId".into(),
                    json!(format!("vpce-{:017x}", u64::from(self.index) * 31 + 7)),
                );
                o.insert("vpcEndpointAccountId".into(), json!(self.account));
            }
        }
        r
    }

    fn background(&mut self, region: &str, t: i64) -> Value {
        let (service, source, name) = match self.rng.random_range(0..8) {
            0..=2 => (
                "config.amazonaws.com",
                "ec2.amazonaws.com",
                "DescribeSecurityGroups",
            ),
            3 => ("config.amazonaws.com", "iam.amazonaws.com", "GetRole"),
            4 => (
                "securityhub.amazonaws.com",
                "ec2.amazonaws.com",
                "DescribeVpcs",
            ),
            5 => (
                "guardduty.amazonaws.com",
                "ec2.amazonaws.com",
                "DescribeInstances",
            ),
            6 => (
                "access-analyzer.amazonaws.com",
                "s3.amazonaws.com",
                "GetBucketPolicyStatus",
            ),
            _ => (
                "cloudtrail.amazonaws.com",
                "s3.amazonaws.com",
                "GetBucketAcl",
            ),
        };
        let linked = format!(
            "AWSServiceRoleFor{}",
            service
                .split('.')
                .next()
                .unwrap_or("Config")
                .replace('-', "")
        );
        // A service-linked role's session keeps its key for hours (its minting is AWS's own).
        let hour = t.div_euclid(6 * 3600) * 6;
        let key = derived_key(&[
            self.spec.seed,
            u64::from(self.index),
            region_number(region),
            hour as u64,
            service.len() as u64,
        ]);
        let identity = self.session_identity(
            &linked,
            service.split('.').next().unwrap_or("svc"),
            &key,
            hour * 3600,
            json!({"invokedBy": service}),
        );
        self.record(
            region,
            t,
            identity,
            source,
            name,
            service,
            service,
            json!({"maxResults": 100}),
            Value::Null,
            true,
        )
    }

    fn user_identity(&self, p: &Person) -> Value {
        json!({"type": "IAMUser", "principalId": format!("AIDA{}", p.user.to_uppercase().replace('-', "")),
            "arn": format!("arn:aws:iam::{}:user/{}", self.account, p.user), "accountId": self.account,
            "accessKeyId": p.key, "userName": p.user})
    }

    fn person_call(&mut self, region: &str, t: i64, p: &mut Person) -> Value {
        let ip = format!(
            "203.0.113.{}",
            10 + USERS.iter().position(|u| *u == p.user).unwrap_or(0)
        );
        let agent = "aws-cli/2.17.0 md/awscrt#0.20.11 ua/2.0 os/linux#6.1 md/arch#x86_64 lang/python#3.11.9 exec-env/CloudShell";
        // Now and then a person assumes a role (role chaining from their key); then works in it.
        if p.session.as_ref().is_none_or(|s| s.3 <= t) && self.rng.random_bool(0.2) {
            let role = ["Admin", "ReadOnly", "Deploy"][self.rng.random_range(0..3)].to_string();
            let key = format!("ASIA{}", self.unique(16));
            self.minted += 1;
            let session_arn = format!(
                "arn:aws:sts::{}:assumed-role/{role}/{}",
                self.account, p.user
            );
            p.session = Some((key.clone(), session_arn.clone(), role.clone(), t + 3600));
            let request = json!({"roleArn": format!("arn:aws:iam::{}:role/{role}", self.account), "roleSessionName": p.user, "durationSeconds": 3600});
            let response = json!({"credentials": {"accessKeyId": key, "sessionToken": "IQoJEXAMPLE", "expiration": "soon"},
                "assumedRoleUser": {"assumedRoleId": format!("AROA{}:{}", role.to_uppercase(), p.user), "arn": session_arn}});
            let identity = self.user_identity(p);
            return self.record(
                region,
                t,
                identity,
                "sts.amazonaws.com",
                "AssumeRole",
                &ip,
                agent,
                request,
                response,
                false,
            );
        }
        let identity = match &p.session {
            Some((key, _, role, exp)) if *exp > t => {
                let (key, role, user) = (key.clone(), role.clone(), p.user.clone());
                self.session_identity(&role, &user, &key, exp - 3600, json!({}))
            }
            _ => self.user_identity(p),
        };
        let (source, name, request) = match self.rng.random_range(0..400) {
            0..=139 => (
                "ec2.amazonaws.com",
                "DescribeInstances",
                json!({"instancesSet": {}, "filterSet": {"items": [{"name": "tag:team", "valueSet": {"items": [{"value": "platform"}]}}]}}),
            ),
            140..=209 => (
                "s3.amazonaws.com",
                "ListBuckets",
                json!({"Host": "s3.amazonaws.com"}),
            ),
            210..=259 => ("iam.amazonaws.com", "ListRoles", json!({"maxItems": 100})),
            260..=309 => (
                "cloudformation.amazonaws.com",
                "DescribeStacks",
                json!({"stackName": "platform"}),
            ),
            310..=349 => (
                "logs.amazonaws.com",
                "FilterLogEvents",
                json!({"logGroupName": "/aws/lambda/orders", "limit": 100}),
            ),
            350..=389 => (
                "lambda.amazonaws.com",
                "ListFunctions",
                json!({"maxItems": 50}),
            ),
            390..=396 => (
                "ec2.amazonaws.com",
                "RunInstances",
                json!({"instancesSet": {"items": [{"imageId": "ami-0abcdef1234567890", "minCount": 1, "maxCount": 1}]}, "instanceType": "m7g.large"}),
            ),
            _ => (
                "iam.amazonaws.com",
                "PutRolePolicy",
                json!({"roleName": "lambda-orders-role", "policyName": "inline", "policyDocument": large_policy(&mut self.rng)}),
            ),
        };
        let response = if name == "RunInstances" {
            large_run_instances(&mut self.rng)
        } else {
            Value::Null
        };
        self.record(
            region, t, identity, source, name, &ip, agent, request, response, true,
        )
    }

    fn data_event(&mut self, region: &str, t: i64, workloads: &[Workload]) -> Value {
        let w = &workloads[self.rng.random_range(0..workloads.len())];
        let function = format!(
            "arn:aws:lambda:{region}:{}:function:{}",
            self.account, w.session
        );
        let identity = json!({"type": "AWSService", "invokedBy": "apigateway.amazonaws.com"});
        let mut r = self.record(
            region,
            t,
            identity,
            "lambda.amazonaws.com",
            "Invoke",
            "apigateway.amazonaws.com",
            "apigateway.amazonaws.com",
            json!({"functionName": function, "invocationType": "RequestResponse"}),
            Value::Null,
            true,
        );
        if let Some(o) = r.as_object_mut() {
            o.insert("resources".into(), json!([{"accountId": self.account, "type": "AWS::Lambda::Function", "ARN": function}]));
        }
        r
    }

    /// Rare events: sign-ins, federation, cross-account access, and the changes compliance
    /// controls watch.
    fn rare(&mut self, region: &str, t: i64, people: &mut [Person]) -> Value {
        let p = self.rng.random_range(0..people.len());
        let ip = format!("198.51.100.{}", 20 + p);
        let browser = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15";
        match self.rng.random_range(0..40) {
            0..=5 => {
                // Console sign-in; some without MFA, some failing.
                let failed = self.rng.random_bool(0.1);
                let mfa = if self.rng.random_bool(0.8) {
                    "Yes"
                } else {
                    "No"
                };
                let identity = self.user_identity(&people[p]);
                let mut r = self.record(
                    region,
                    t,
                    identity,
                    "signin.amazonaws.com",
                    "ConsoleLogin",
                    &ip,
                    browser,
                    Value::Null,
                    json!({"ConsoleLogin": if failed { "Failure" } else { "Success" }}),
                    false,
                );
                if let Some(o) = r.as_object_mut() {
                    o.insert("eventType".into(), json!("AwsConsoleSignIn"));
                    o.insert("additionalEventData".into(), json!({"LoginTo": "https://console.aws.amazon.com/console/home", "MobileVersion": "No", "MFAUsed": mfa}));
                    if failed {
                        o.insert("errorMessage".into(), json!("Failed authentication"));
                    }
                }
                r
            }
            6..=9 => {
                // SAML federation from the company IdP.
                let user = format!("{}@example.com", people[p].user);
                let key = format!("ASIA{}", self.unique(16));
                self.minted += 1;
                let session_arn = format!(
                    "arn:aws:sts::{}:assumed-role/AWSReservedSSO_Admin/{user}",
                    self.account
                );
                people[p].session = Some((
                    key.clone(),
                    session_arn.clone(),
                    "AWSReservedSSO_Admin".into(),
                    t + 3600,
                ));
                let identity = json!({"type": "SAMLUser", "principalId": format!("idp.example.com:{user}"), "userName": user, "identityProvider": "idp.example.com"});
                let request = json!({"sAMLAssertionID": format!("_{}", self.uuid()), "roleSessionName": user,
                    "roleArn": format!("arn:aws:iam::{}:role/AWSReservedSSO_Admin", self.account),
                    "principalArn": format!("arn:aws:iam::{}:saml-provider/ExampleIdP", self.account), "durationSeconds": 3600});
                let response = json!({"credentials": {"accessKeyId": key, "sessionToken": "IQoJEXAMPLE", "expiration": "soon"},
                    "assumedRoleUser": {"assumedRoleId": format!("AROASSOADMIN:{user}"), "arn": session_arn},
                    "subject": user, "subjectType": "persistent", "issuer": "https://idp.example.com/saml", "audience": "https://signin.aws.amazon.com/saml",
                    "nameQualifier": "Xy9u8Zb1example="});
                self.record(
                    region,
                    t,
                    identity,
                    "sts.amazonaws.com",
                    "AssumeRoleWithSAML",
                    "AWS Internal",
                    "aws-internal/3",
                    request,
                    response,
                    false,
                )
            }
            10..=12 => {
                // Cross-account: the security account's auditor role into this account; the
                // caller's account logs its own copy too.
                let key = format!("ASIA{}", self.unique(16));
                self.minted += 1;
                let caller_account = account_id(0);
                let session_arn = format!(
                    "arn:aws:sts::{}:assumed-role/OrganizationAccountAccessRole/auditor",
                    self.account
                );
                let identity = json!({"type": "AWSAccount", "principalId": "AIDAAUDITOR:auditor", "accountId": caller_account});
                let request = json!({"roleArn": format!("arn:aws:iam::{}:role/OrganizationAccountAccessRole", self.account), "roleSessionName": "auditor"});
                let response = json!({"credentials": {"accessKeyId": key, "sessionToken": "IQoJEXAMPLE", "expiration": "soon"},
                    "assumedRoleUser": {"assumedRoleId": "AROAORGACCESS:auditor", "arn": session_arn}});
                self.record(
                    region,
                    t,
                    identity,
                    "sts.amazonaws.com",
                    "AssumeRole",
                    "198.51.100.200",
                    "aws-cli/2.17.0",
                    request,
                    response,
                    false,
                )
            }
            13..=19 => {
                let identity = self.user_identity(&people[p]);
                let name = [
                    "AuthorizeSecurityGroupIngress",
                    "RevokeSecurityGroupEgress",
                    "CreateSecurityGroup",
                ][self.rng.random_range(0..3)];
                self.record(region, t, identity, "ec2.amazonaws.com", name, &ip, "aws-cli/2.17.0",
                    json!({"groupId": "sg-0123456789abcdef0", "ipPermissions": {"items": [{"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}]}}), Value::Null, true)
            }
            20..=22 => {
                let identity = self.user_identity(&people[p]);
                let name = [
                    "CreateRoute",
                    "ReplaceNetworkAclEntry",
                    "AttachInternetGateway",
                    "CreateVpc",
                    "ModifyVpcAttribute",
                ][self.rng.random_range(0..5)];
                self.record(
                    region,
                    t,
                    identity,
                    "ec2.amazonaws.com",
                    name,
                    &ip,
                    "aws-cli/2.17.0",
                    json!({"vpcId": "vpc-0123456789abcdef0"}),
                    Value::Null,
                    true,
                )
            }
            23..=25 => {
                let identity = self.user_identity(&people[p]);
                let name = ["PutBucketPolicy", "PutBucketAcl", "DeleteBucketPolicy"]
                    [self.rng.random_range(0..3)];
                let bucket = format!("shared-{}-{}", self.rng.random_range(0..50), self.account);
                self.record(
                    region,
                    t,
                    identity,
                    "s3.amazonaws.com",
                    name,
                    &ip,
                    "aws-cli/2.17.0",
                    json!({"bucketName": bucket, "Host": format!("{bucket}.s3.amazonaws.com")}),
                    Value::Null,
                    true,
                )
            }
            26..=27 => {
                // Deletions, for who-deleted.
                let identity = match &people[p].session {
                    Some((key, _, role, exp)) if *exp > t => {
                        let (key, role, user) = (key.clone(), role.clone(), people[p].user.clone());
                        self.session_identity(&role, &user, &key, exp - 3600, json!({}))
                    }
                    _ => self.user_identity(&people[p]),
                };
                let bucket = format!("scratch-{}-{}", self.rng.random_range(0..200), self.account);
                let (source, name, request) = match self.rng.random_range(0..4) {
                    0 => (
                        "s3.amazonaws.com",
                        "DeleteBucket",
                        json!({"bucketName": bucket, "Host": format!("{bucket}.s3.amazonaws.com")}),
                    ),
                    1 => (
                        "ec2.amazonaws.com",
                        "TerminateInstances",
                        json!({"instancesSet": {"items": [{"instanceId": format!("i-{:017x}", self.rng.random_range(0..1u64 << 40))}]}}),
                    ),
                    2 => (
                        "dynamodb.amazonaws.com",
                        "DeleteTable",
                        json!({"tableName": format!("tmp-{}", self.rng.random_range(0..500))}),
                    ),
                    _ => (
                        "rds.amazonaws.com",
                        "DeleteDBInstance",
                        json!({"dBInstanceIdentifier": format!("db-{}", self.rng.random_range(0..100))}),
                    ),
                };
                self.record(
                    region,
                    t,
                    identity,
                    source,
                    name,
                    &ip,
                    "aws-cli/2.17.0",
                    request,
                    Value::Null,
                    true,
                )
            }
            28..=29 => {
                let identity = self.user_identity(&people[p]);
                let name = [
                    "AttachRolePolicy",
                    "CreatePolicyVersion",
                    "DeleteUserPolicy",
                    "CreateAccessKey",
                ][self.rng.random_range(0..4)];
                self.record(region, t, identity, "iam.amazonaws.com", name, &ip, "aws-cli/2.17.0",
                    json!({"roleName": "lambda-orders-role", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}), Value::Null, true)
            }
            30 => {
                let identity = self.user_identity(&people[p]);
                let name = ["DisableKey", "ScheduleKeyDeletion", "PutKeyPolicy"]
                    [self.rng.random_range(0..3)];
                self.record(region, t, identity, "kms.amazonaws.com", name, &ip, "aws-cli/2.17.0",
                    json!({"keyId": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}), Value::Null, true)
            }
            31 => {
                let identity = self.user_identity(&people[p]);
                let name = ["StopLogging", "UpdateTrail", "PutEventSelectors"]
                    [self.rng.random_range(0..3)];
                self.record(region, t, identity, "cloudtrail.amazonaws.com", name, &ip, "aws-cli/2.17.0",
                    json!({"name": format!("arn:aws:cloudtrail:us-east-1:{}:trail/org-trail", self.account)}), Value::Null, true)
            }
            32 => {
                let identity = self.user_identity(&people[p]);
                let name =
                    ["StopConfigurationRecorder", "PutConfigRule"][self.rng.random_range(0..2)];
                self.record(
                    region,
                    t,
                    identity,
                    "config.amazonaws.com",
                    name,
                    &ip,
                    "aws-cli/2.17.0",
                    json!({"configurationRecorderName": "default"}),
                    Value::Null,
                    true,
                )
            }
            33 => {
                // Root: a sign-in now and then.
                let identity = json!({"type": "Root", "principalId": self.account, "arn": format!("arn:aws:iam::{}:root", self.account), "accountId": self.account});
                let mut r = self.record(
                    region,
                    t,
                    identity,
                    "signin.amazonaws.com",
                    "ConsoleLogin",
                    &ip,
                    browser,
                    Value::Null,
                    json!({"ConsoleLogin": "Success"}),
                    false,
                );
                if let Some(o) = r.as_object_mut() {
                    o.insert("eventType".into(), json!("AwsConsoleSignIn"));
                    o.insert("additionalEventData".into(), json!({"LoginTo": "https://console.aws.amazon.com/console/home", "MobileVersion": "No", "MFAUsed": "Yes"}));
                }
                r
            }
            34 if self.index == 0 => {
                let identity = self.user_identity(&people[p]);
                let name =
                    ["CreateAccount", "AttachPolicy", "MoveAccount"][self.rng.random_range(0..3)];
                self.record(
                    region,
                    t,
                    identity,
                    "organizations.amazonaws.com",
                    name,
                    &ip,
                    "aws-cli/2.17.0",
                    json!({"policyId": "p-examplepolicyid111"}),
                    Value::Null,
                    true,
                )
            }
            _ => {
                let identity = self.user_identity(&people[p]);
                self.record(
                    region,
                    t,
                    identity,
                    "sts.amazonaws.com",
                    "GetCallerIdentity",
                    &ip,
                    "aws-cli/2.17.0",
                    Value::Null,
                    Value::Null,
                    true,
                )
            }
        }
    }

    /// Groups a region's events into delivered files: about every 5 minutes while there are
    /// events, busy streams in files of about `events_per_file`.
    fn deliver(
        &mut self,
        root: &Path,
        region: &str,
        mut events: Vec<Event>,
    ) -> std::io::Result<Generated> {
        events.sort_by_key(|e| e.time);
        let n = events.len() as u64;
        let windows = n
            .div_ceil(u64::from(self.spec.events_per_file.max(1)))
            .clamp(1, 288);
        let window = (86_400 / windows as i64).max(300);
        let mut out = Generated::default();
        let mut start = 0;
        while start < events.len() {
            let first = events[start].time;
            let bucket = first.div_euclid(window);
            let mut end = start;
            while end < events.len() && events[end].time.div_euclid(window) == bucket {
                end += 1;
            }
            let latest = events[end - 1].time;
            let delivered = Utc
                .timestamp_opt(latest + self.rng.random_range(60..900), 0)
                .single()
                .unwrap_or_default();
            // Records are not in time order within a file.
            let mut records: Vec<&Value> = events[start..end].iter().map(|e| &e.record).collect();
            if records.len() > 2 {
                let i = self.rng.random_range(0..records.len());
                let j = self.rng.random_range(0..records.len());
                records.swap(i, j);
            }
            let body = serde_json::to_vec(&json!({ "Records": records }))?;
            out.files += 1;
            out.events += (end - start) as u64;
            out.json_bytes += body.len() as u64;
            out.gzip_bytes += self.write_file(root, region, delivered, &body)?;
            if self.rng.random_bool(self.spec.duplicate_files) {
                let later = delivered + Duration::hours(self.rng.random_range(1..30));
                out.gzip_bytes += self.write_file(root, region, later, &body)?;
                out.files += 1;
                out.duplicate_events += (end - start) as u64;
                out.json_bytes += body.len() as u64;
            }
            start = end;
        }
        Ok(out)
    }

    fn write_file(
        &mut self,
        root: &Path,
        region: &str,
        delivered: DateTime<Utc>,
        body: &[u8],
    ) -> std::io::Result<u64> {
        let mut dir: PathBuf = root.join("AWSLogs");
        if let Some(org) = self.spec.org_id() {
            dir.push(org);
        }
        dir.push(&self.account);
        dir.push("CloudTrail");
        dir.push(region);
        dir.push(delivered.format("%Y/%m/%d").to_string());
        fs::create_dir_all(&dir)?;
        let suffix: String = (0..16)
            .map(|_| {
                let c = self.rng.random_range(0..62u8);
                (match c {
                    0..=9 => b'0' + c,
                    10..=35 => b'a' + c - 10,
                    _ => b'A' + c - 36,
                }) as char
            })
            .collect();
        let name = format!(
            "{}_CloudTrail_{region}_{}_{suffix}.json.gz",
            self.account,
            delivered.format("%Y%m%dT%H%MZ")
        );
        let mut enc = GzEncoder::new(Vec::with_capacity(body.len() / 8), Compression::new(6));
        enc.write_all(body)?;
        let gz = enc.finish()?;
        fs::write(dir.join(name), &gz)?;
        Ok(gz.len() as u64)
    }
}

fn region_number(region: &str) -> u64 {
    REGIONS.iter().position(|r| *r == region).unwrap_or(0) as u64
}

/// A temporary key determined by `parts` (splitmix64 over them): the same parts, the same key.
fn derived_key(parts: &[u64]) -> String {
    let mut x = 0x5151_7A7Au64;
    for p in parts {
        x = x.wrapping_add(*p).wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
    }
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let tail: String = (0..12)
        .map(|i| ALPHABET[((x >> (i * 5)) & 31) as usize] as char)
        .collect();
    format!("ASIAZZ{}{tail}", ALPHABET[(x >> 60) as usize & 31] as char)
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
