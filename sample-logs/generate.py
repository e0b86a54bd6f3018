#!/usr/bin/env python3
"""Regenerates the sample trail in this folder (deterministic: same output every run).

The story is told in README.md beside this file. Run from anywhere:
    python3 sample-logs/generate.py
"""
import gzip
import json
import os
import random
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
ORG = "o-a1b2c3d4e5"
PROD = "111122223333"
SEC = "444455556666"
rng = random.Random(20261102)


def eid(n):
    return "%08x-%04x-4%03x-a%03x-%012x" % (n * 2654435761 % 2**32, n % 65536, n % 4096, (n * 7) % 4096, n * 97)


def alice():
    return {
        "type": "IAMUser", "principalId": "AIDAEXAMPLEALICE0001", "arn": f"arn:aws:iam::{PROD}:user/alice",
        "accountId": PROD, "accessKeyId": "AKIAEXAMPLEALICE0001", "userName": "alice",
    }


def bob(console=False):
    u = {
        "type": "IAMUser", "principalId": "AIDAEXAMPLEBOB000001", "arn": f"arn:aws:iam::{PROD}:user/bob",
        "accountId": PROD, "accessKeyId": "AKIAEXAMPLEBOB000001", "userName": "bob",
    }
    if console:
        u["accessKeyId"] = "ASIAEXAMPLECONSOLE01"
        u["sessionContext"] = {"sessionIssuer": {}, "webIdFederationData": {},
                               "attributes": {"creationDate": "2026-11-03T21:02:11Z", "mfaAuthenticated": "false"}}
    return u


def data_admin_session():
    return {
        "type": "AssumedRole", "principalId": "AROAEXAMPLEDATAADMIN:bob-maintenance",
        "arn": f"arn:aws:sts::{PROD}:assumed-role/DataAdmin/bob-maintenance", "accountId": PROD,
        "accessKeyId": "ASIAEXAMPLETEMPKEY01",
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLEDATAADMIN",
                              "arn": f"arn:aws:iam::{PROD}:role/DataAdmin", "accountId": PROD, "userName": "DataAdmin"},
            "webIdFederationData": {},
            "attributes": {"creationDate": "2026-11-03T23:41:09Z", "mfaAuthenticated": "false"},
        },
    }


def service(svc):
    return {"type": "AWSService", "invokedBy": svc}


n = 0


def rec(time, name, source, ident, region="us-east-1", ip="198.51.100.23", ua="aws-cli/2.17.0 Python/3.11.6 Linux/6.1 exe/x86_64",
        req=None, resp=None, readonly=None, account=PROD, resources=None, error=None, category="Management",
        etype="AwsApiCall", extra=None):
    global n
    n += 1
    r = {
        "eventVersion": "1.11", "userIdentity": ident, "eventTime": time, "eventSource": source,
        "eventName": name, "awsRegion": region, "sourceIPAddress": ip, "userAgent": ua,
        "requestParameters": req, "responseElements": resp,
        "requestID": eid(n + 5000).upper()[:20], "eventID": eid(n),
        "readOnly": bool(readonly) if readonly is not None else name.startswith(("Describe", "List", "Get")),
        "eventType": etype, "managementEvent": category == "Management",
        "recipientAccountId": account, "eventCategory": category,
    }
    if etype == "AwsApiCall":
        r["tlsDetails"] = {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                           "clientProvidedHostHeader": f"{source.split('.')[0]}.{region}.amazonaws.com"}
    if resources:
        r["resources"] = resources
    if error:
        r["errorCode"], r["errorMessage"] = error
    if extra:
        r.update(extra)
    return r


def routine(day, region, count):
    out = []
    for i in range(count):
        h, m, s = rng.randrange(0, 23), rng.randrange(60), rng.randrange(60)
        t = f"{day}T{h:02d}:{m:02d}:{s:02d}Z"
        who = rng.choice([alice(), bob(), service("ec2.amazonaws.com")])
        choice = rng.randrange(6)
        if choice == 0:
            out.append(rec(t, "DescribeInstances", "ec2.amazonaws.com", who, region,
                           req={"instancesSet": {}, "filterSet": {}, "maxResults": 1000}))
        elif choice == 1:
            out.append(rec(t, "ListBuckets", "s3.amazonaws.com", who, region, req={"Host": "s3.amazonaws.com"}))
        elif choice == 2:
            out.append(rec(t, "GetObject", "s3.amazonaws.com", who, region, category="Data",
                           req={"bucketName": "customer-exports-prod", "key": f"exports/{day}/part-{i:04d}.csv.gz"},
                           resources=[{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::customer-exports-prod/exports/{day}/part-{i:04d}.csv.gz"},
                                      {"accountId": PROD, "type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::customer-exports-prod"}]))
        elif choice == 3:
            out.append(rec(t, "Decrypt", "kms.amazonaws.com", service("s3.amazonaws.com"), region, ip="s3.amazonaws.com",
                           ua="s3.amazonaws.com", req={"encryptionAlgorithm": "SYMMETRIC_DEFAULT",
                                                        "encryptionContext": {"aws:s3:arn": "arn:aws:s3:::customer-exports-prod"}},
                           resources=[{"accountId": PROD, "type": "AWS::KMS::Key",
                                       "ARN": f"arn:aws:kms:{region}:{PROD}:key/1234abcd-12ab-34cd-56ef-1234567890ab"}]))
        elif choice == 4:
            out.append(rec(t, "GetCallerIdentity", "sts.amazonaws.com", who, region))
        else:
            out.append(rec(t, "DescribeSecurityGroups", "ec2.amazonaws.com", who, region,
                           error=("Client.UnauthorizedOperation", "You are not authorized to perform this operation."))
                       if rng.random() < 0.3 else
                       rec(t, "DescribeSecurityGroups", "ec2.amazonaws.com", who, region, req={"securityGroupIdSet": {}}))
    return out


def write(account, region, day_folder, stamp, suffix, records, org=True, digest=False):
    base = os.path.join(HERE, "AWSLogs", ORG if org else "", account, "CloudTrail-Digest" if digest else "CloudTrail",
                        region, *day_folder.split("-"))
    os.makedirs(base, exist_ok=True)
    kind = "CloudTrail-Digest" if digest else "CloudTrail"
    name = f"{account}_{kind}_{region}_{stamp}_{suffix}.json.gz"
    path = os.path.join(base, name)
    body = json.dumps(records if digest else {"Records": records}, separators=(",", ":")).encode()
    with open(path, "wb") as f:
        f.write(gzip.compress(body, mtime=0))
    return path


def main():
    shutil.rmtree(os.path.join(HERE, "AWSLogs"), ignore_errors=True)
    # Day 1 and 2: routine activity in two regions and two accounts.
    for day, stamp in [("2026-11-02", "20261102T2355Z"), ("2026-11-03", "20261103T2035Z")]:
        write(PROD, "us-east-1", day, stamp, "Ab3dE5fG7hJ9kL1m", routine(day, "us-east-1", 40))
        write(PROD, "eu-west-1", day, stamp, "Nn2pQ4rS6tU8vW0x", routine(day, "eu-west-1", 25))
        sec = routine(day, "us-east-1", 10)
        for r in sec:
            r["recipientAccountId"] = SEC
        write(SEC, "us-east-1", day, stamp, "Yy1zA3bC5dE7fG9h", sec)

    # Night of 2026-11-03: bob signs in to the console without MFA ...
    login = rec("2026-11-03T21:02:11Z", "ConsoleLogin", "signin.amazonaws.com",
                {"type": "IAMUser", "principalId": "AIDAEXAMPLEBOB000001", "arn": f"arn:aws:iam::{PROD}:user/bob",
                 "accountId": PROD, "userName": "bob"},
                ip="203.0.113.50", ua="Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
                resp={"ConsoleLogin": "Success"}, etype="AwsConsoleSignIn", readonly=False,
                extra={"additionalEventData": {"LoginTo": "https://console.aws.amazon.com/console/home",
                                               "MobileVersion": "No", "MFAUsed": "No"}})
    # ... assumes the DataAdmin role with his access key ...
    assume = rec("2026-11-03T23:41:09Z", "AssumeRole", "sts.amazonaws.com", bob(), ip="203.0.113.50",
                 req={"roleArn": f"arn:aws:iam::{PROD}:role/DataAdmin", "roleSessionName": "bob-maintenance",
                      "durationSeconds": 3600},
                 resp={"credentials": {"accessKeyId": "ASIAEXAMPLETEMPKEY01", "sessionToken": "IQoJb3JpZ2luX2VjEXAMPLE",
                                       "expiration": "Nov 4, 2026, 12:41:09 AM"},
                       "assumedRoleUser": {"assumedRoleId": "AROAEXAMPLEDATAADMIN:bob-maintenance",
                                           "arn": f"arn:aws:sts::{PROD}:assumed-role/DataAdmin/bob-maintenance"}},
                 resources=[{"accountId": PROD, "type": "AWS::IAM::Role", "ARN": f"arn:aws:iam::{PROD}:role/DataAdmin"}],
                 readonly=True)
    sess = data_admin_session()
    # ... empties and deletes the bucket customer-exports-prod with the temporary key.
    steps = [
        rec("2026-11-03T23:44:30Z", "ListObjectsV2", "s3.amazonaws.com", sess, ip="203.0.113.50", category="Data",
            req={"bucketName": "customer-exports-prod", "list-type": "2"},
            resources=[{"accountId": PROD, "type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::customer-exports-prod"}]),
        rec("2026-11-03T23:52:02Z", "DeleteObjects", "s3.amazonaws.com", sess, ip="203.0.113.50", category="Data",
            req={"bucketName": "customer-exports-prod", "delete": ""}, readonly=False,
            resources=[{"accountId": PROD, "type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::customer-exports-prod"}]),
        rec("2026-11-03T23:57:13Z", "PutBucketLogging", "s3.amazonaws.com", sess, ip="203.0.113.50",
            req={"bucketName": "customer-exports-prod", "BucketLoggingStatus": {"xmlns": "http://s3.amazonaws.com/doc/2006-03-01/"}},
            readonly=False),
    ]
    # 23:58:41 UTC on the 3rd, delivered at 00:05 on the 4th: lands in the 2026/11/04 folder.
    delete = rec("2026-11-03T23:58:41Z", "DeleteBucket", "s3.amazonaws.com", sess, ip="203.0.113.50",
                 req={"bucketName": "customer-exports-prod", "Host": "customer-exports-prod.s3.amazonaws.com"},
                 resources=[{"accountId": PROD, "type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::customer-exports-prod"}],
                 readonly=False)
    write(PROD, "us-east-1", "2026-11-03", "20261103T2355Z", "Qr5sT7uV9wX1yZ3a", [login, assume] + steps)
    after = routine("2026-11-04", "us-east-1", 30)
    write(PROD, "us-east-1", "2026-11-04", "20261104T0005Z", "Bc4dE6fG8hJ0kL2m", [delete] + after[:10])
    # The same DeleteBucket record delivered again in a later file (CloudTrail may duplicate).
    write(PROD, "us-east-1", "2026-11-04", "20261104T0110Z", "Cd5eF7gH9jK1lM3n", after[10:] + [delete])
    write(PROD, "eu-west-1", "2026-11-04", "20261104T0930Z", "De6fG8hJ0kL2mN4p", routine("2026-11-04", "eu-west-1", 20))

    # A digest file: integrity data, not events.
    write(PROD, "us-east-1", "2026-11-04", "20261104T0110Z", "Ef7gH9jK1lM3nP5q",
          {"awsAccountId": PROD, "digestStartTime": "2026-11-04T00:10:00Z", "digestEndTime": "2026-11-04T01:10:00Z",
           "digestS3Bucket": "org-trail-logs", "digestPublicKeyFingerprint": "0123456789abcdef0123456789abcdef",
           "digestSignatureAlgorithm": "SHA256withRSA", "newestEventTime": "2026-11-04T01:09:41Z",
           "oldestEventTime": "2026-11-03T23:58:41Z", "previousDigestS3Bucket": "org-trail-logs",
           "logFiles": []}, digest=True)

    # A malformed file: a log file cut off in transit (truncated gzip).
    good = write(SEC, "us-east-1", "2026-11-04", "20261104T0200Z", "Fg8hJ0kL2mN4pQ6r", routine("2026-11-04", "us-east-1", 12))
    with open(good, "rb") as f:
        data = f.read()
    with open(good, "wb") as f:
        f.write(data[: len(data) * 2 // 3])


if __name__ == "__main__":
    main()
