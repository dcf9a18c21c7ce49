#!/usr/bin/env python3
"""Client compatibility matrix for Airlock's AWS gate.

For every service in the table below, real clients (the aws CLI and boto3) run the same
reads and mutations twice: directly against a local AWS (moto, on loopback) and inside
`airlock run`, where every call goes through the broker. A read passes when the answer
through Airlock equals the direct one (volatile fields removed). A mutation passes when
inside Airlock it became a proposal (403 AirlockProposalPending, or exit 75 from the aws
shim for multi-call commands), `airlock approve` executed it, and the effect it had
equals the effect of the direct call.

Two moto servers, seeded identically: M1 serves the direct calls and the reads through
Airlock; M2 only receives what approvals execute, so M1 (direct mutations) and M2
(approved mutations) can be compared afterwards.

    compat.py --airlock BIN --aws AWS_CLI --python PYTHON_WITH_BOTO3
              [--services a,b,c | --reduced] [--json OUT] [--workdir DIR] [--label TEXT]

The same file is also the driver that runs the cases (`compat.py --driver SPEC`): copied
into each workspace and run by --python, on the host (direct) or inside the sandbox. The
driver needs only the standard library and boto3; the orchestrator needs boto3 too (to
seed and verify). Details: docs/compatibility.md.
"""

import argparse
import atexit
import base64
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

ACCOUNT = "123456789012"
REGION = "us-east-1"
BUCKET = "compat-bucket"        # the S3 cases' bucket
SHARED_BUCKET = "compat-shared"  # what other services point at (trails, pipelines, streams)
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/compat-role"
CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENTS = ("cli", "boto3")
PROPOSAL_RE = re.compile(r"Proposal ([0-9a-f]{8})\b")
ERROR_CODE_RE = re.compile(r"An error occurred \(([^)]+)\)")
CASE_TIMEOUT = 300

# One instant for the whole run: log events and traces carry it, identically on M1 and M2.
NOW_S = int(time.time())

# ---------------------------------------------------------------------------------------
# Helpers available to every boto3 snippet (cases and verifications).
# ---------------------------------------------------------------------------------------


def pick(d, *keys):
    """The named keys of a dict (dotted paths reach into nested dicts), missing ones left out."""
    out = {}
    for key in keys:
        value, ok = d, True
        for part in key.split("."):
            if isinstance(value, dict) and part in value:
                value = value[part]
            else:
                ok = False
                break
        if ok:
            out[key] = value
    return out


def get_url(url):
    """GET a URL (a presigned one). Inside the sandbox NO_PROXY covers 127.0.0.1, so this
    reaches the broker's AWS endpoint directly, not the egress proxy."""
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return {"status": response.status, "body": response.read().decode("utf-8", "replace")}
    except urllib.error.HTTPError as error:
        return {"status": error.code, "body": error.read().decode("utf-8", "replace")[:300]}


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def s3_tree(c, prefix, bucket=BUCKET):
    """Every object under a prefix: size and SHA-256 of its content."""
    tree = {}
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            body = c.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            tree[item["Key"]] = {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    return tree


def run_snippet(code, namespace):
    """A snippet is an expression (its value is the result) or statements that set `result`."""
    try:
        compiled = compile(code, "<case>", "eval")
    except SyntaxError:
        exec(compile(code, "<case>", "exec"), namespace)
        return namespace.get("result")
    return eval(compiled, namespace)


def jsonable(value):
    """boto3 results (datetimes, bytes, streams) as plain JSON."""
    def default(obj):
        if isinstance(obj, (bytes, bytearray)):
            return obj.decode("utf-8", "replace")
        if hasattr(obj, "read"):
            return obj.read().decode("utf-8", "replace")
        return str(obj)
    return json.loads(json.dumps(value, default=default))


# ---------------------------------------------------------------------------------------
# The case table. Placeholders: <<who>> is "cli" or "boto3" (each client mutates its own
# resources), <<name>> a value the seed returned for the server the case runs against
# (ids moto generates differ between M1 and M2), <<$name>> a value captured at run time
# from an earlier step of the same case.
# ---------------------------------------------------------------------------------------


class Op:
    def __init__(self, kind, name, cli=None, boto3=None, out="json", files=None, verify=None,
                 shim=False, pre_cli=None, pre_boto3=None, client=None):
        self.kind = kind            # "read" or "mutation" (anything Airlock must gate)
        self.name = name
        self.cli = cli              # argv after `aws`, or None
        self.boto3 = boto3          # snippet, or None
        self.out = out              # CLI output: json | text | files:DIR | url (GET the URL printed)
        self.files = files or {}    # files created in the case directory first
        self.verify = verify        # mutations: boto3 snippet reading the effect (None: nothing observable)
        self.shim = shim            # the CLI variant is one of the aws shim's multi-call commands
        self.pre_cli = pre_cli or []      # earlier steps: [{"argv": [...], "capture": {name: regex}}]
        self.pre_boto3 = pre_boto3 or []  # [{"code": "...", "capture": {name: regex}}]
        self.client = client        # boto3 client name when not the service's


def R(name, cli=None, boto3=None, **kw):
    return Op("read", name, cli, boto3, **kw)


def M(name, cli=None, boto3=None, **kw):
    return Op("mutation", name, cli, boto3, **kw)


class Service:
    def __init__(self, name, seed, ops, client=None):
        self.name = name
        self.seed = seed            # fn(k) -> refs; k(name) gives a boto3 client on the server
        self.ops = ops
        self.client = client or name


def j(value):
    """A CLI argument given as JSON."""
    return json.dumps(value, separators=(",", ":"))


def trust(*services):
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"Service": [f"{s}.amazonaws.com" for s in services]}}]})


SITE = {"site/index.html": {"text": "<p>index</p>\n"}, "site/css/app.css": {"text": "p{}\n"},
        "site/js/app.js": {"text": "1;\n"}}
BIG = {"big.bin": {"pattern": "compat-big", "size": 9 * 1024 * 1024}}   # above both clients' multipart threshold
S3_OBJECTS = {"top.txt": "top\n", "data/a.txt": "alpha\n", "data/b.txt": "bravo\n", "data/c.txt": "charlie\n",
              "data/sub/d.txt": "delta\n", "data/sub/e.txt": "echo\n"}
# Keys that need encoding in the path (the broker signs S3 paths as the client sent them).
ODD_KEYS = ["odd/with space.txt", "odd/plus+sign.txt", "odd/ünïcødé.txt", "odd/a=b&c;d,e.txt", "odd/tilde~star*(x)!.txt", "odd/%41percent.txt"]
S3_OBJECTS.update({key: key.upper() + "\n" for key in ODD_KEYS})
ODD_SITE = {"odd site/with space.txt": {"text": "s\n"}, "odd site/plus+ünï.txt": {"text": "u\n"}}
for _who in CLIENTS:
    S3_OBJECTS.update({f"rm-{_who}/1.txt": "1\n", f"rm-{_who}/2.txt": "2\n", f"mv-{_who}.txt": "move me\n",
                       f"del-{_who}.txt": "delete me\n", f"copy-src-{_who}.txt": "copy me\n"})


def lambda_zip():
    """A deterministic zip (fixed timestamps): the same bytes for every run and server."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        info = zipfile.ZipInfo("index.py", date_time=(2020, 1, 1, 0, 0, 0))
        z.writestr(info, "def handler(event, context):\n    return 1\n")
    return buffer.getvalue()


CFN_TEMPLATE = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "compat-cfn-topic"}}}}


def cfn_template(who):
    return {"Resources": {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": f"compat-{who}-deploy-topic"}},
                          "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": f"compat-{who}-deploy-q"}}}}


PIPELINE_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/compat-pipeline-role"
PIPELINE = {"roleArn": PIPELINE_ROLE_ARN, "artifactStore": {"type": "S3", "location": SHARED_BUCKET},
            "stages": [{"name": "Source", "actions": [{"name": "S", "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
                                                       "configuration": {"S3Bucket": SHARED_BUCKET, "S3ObjectKey": "src.zip"}, "outputArtifacts": [{"name": "src"}]}]},
                       {"name": "Build", "actions": [{"name": "B", "actionTypeId": {"category": "Build", "owner": "AWS", "provider": "CodeBuild", "version": "1"},
                                                      "configuration": {"ProjectName": "p"}, "inputArtifacts": [{"name": "src"}]}]}]}
STATE_MACHINE = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
SCP = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


def trace_id(n):
    return f"1-5f000000-{n:024x}"


def segment(who_n):
    return json.dumps({"name": "compat", "id": f"{who_n:016x}", "trace_id": trace_id(who_n),
                       "start_time": NOW_S - 30, "end_time": NOW_S - 29})


# Seeds: one per service, run identically on M1 and M2; each returns refs for placeholders.

def seed_common(k):
    """Shared by several services: a role every service may assume, a bucket, the default VPC."""
    k("iam").create_role(RoleName="compat-role", AssumeRolePolicyDocument=trust(
        "batch", "codepipeline", "states", "lambda", "eks", "firehose", "config", "cloudformation", "ecs-tasks"))
    # moto's CreatePipeline wants a role whose trust names codepipeline alone.
    k("iam").create_role(RoleName="compat-pipeline-role", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "codepipeline.amazonaws.com"}}]}))
    k("s3").create_bucket(Bucket=SHARED_BUCKET)
    ec2 = k("ec2")
    vpc = [v for v in ec2.describe_vpcs()["Vpcs"] if v.get("IsDefault")][0]["VpcId"]
    subnets = sorted(ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"],
                     key=lambda s: s["AvailabilityZone"])
    # moto's AMIs come from a fixed list: the same ids on every server.
    ami = sorted(i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"])[0]
    return {"vpc_id": vpc, "subnet1": subnets[0]["SubnetId"], "subnet2": subnets[1]["SubnetId"], "ami": ami}


def seed_sts(k):
    k("iam").create_role(RoleName="compat-sts-role", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]}))


def seed_iam(k):
    k("iam").create_user(UserName="compat-user", Path="/compat/")


def seed_s3(k):
    c = k("s3")
    c.create_bucket(Bucket=BUCKET)
    for key, body in S3_OBJECTS.items():
        c.put_object(Bucket=BUCKET, Key=key, Body=body.encode())


def seed_ec2(k):
    k("ec2").create_security_group(GroupName="compat-sg", Description="compat")


def seed_sqs(k):
    c, refs = k("sqs"), {}
    for name in ["compat-queue"] + [f"compat-{step}-{who}" for step in ("send", "recv", "del", "sub") for who in CLIENTS]:
        refs["q_" + name] = c.create_queue(QueueName=name)["QueueUrl"]
    for name in ["compat-queue"] + [f"compat-{step}-{who}" for step in ("recv", "del") for who in CLIENTS]:
        c.send_message(QueueUrl=refs["q_" + name], MessageBody="hello from the seed")
    return refs


def seed_sns(k):
    k("sns").create_topic(Name="compat-topic")


def seed_dynamodb(k):
    c = k("dynamodb")
    c.create_table(TableName="compat-table", BillingMode="PAY_PER_REQUEST",
                   KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                   AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}])
    for pk, sk in [("a", "1"), ("a", "2"), ("a", "3"), ("b", "1"), ("upd-cli", "1"), ("upd-boto3", "1")]:
        c.put_item(TableName="compat-table", Item={"pk": {"S": pk}, "sk": {"S": sk}, "v": {"S": f"{pk}{sk}"}})


def seed_logs(k):
    c = k("logs")
    c.create_log_group(logGroupName="/compat/group")
    for stream in ["s1", "cli-stream", "boto3-stream"]:
        c.create_log_stream(logGroupName="/compat/group", logStreamName=stream)
    c.put_log_events(logGroupName="/compat/group", logStreamName="s1",
                     logEvents=[{"timestamp": NOW_S * 1000 - 3000 + i, "message": f"event {i}"} for i in range(3)])


def seed_cloudformation(k):
    k("cloudformation").create_stack(StackName="compat-stack", TemplateBody=json.dumps(CFN_TEMPLATE))


def seed_kms(k):
    c = k("kms")
    key = c.create_key(Description="compat-key")["KeyMetadata"]["KeyId"]
    c.create_alias(AliasName="alias/compat-key", TargetKeyId=key)
    return {"key_id": key}


def seed_ssm(k):
    c = k("ssm")
    c.put_parameter(Name="/compat/param", Value="value1", Type="String")
    c.put_parameter(Name="/compat/other", Value="value2", Type="String")


def seed_secretsmanager(k):
    k("secretsmanager").create_secret(Name="compat-secret", SecretString="s3cret")


def seed_lambda(k):
    k("lambda").create_function(FunctionName="compat-fn", Runtime="python3.11", Role=ROLE_ARN, Handler="index.handler",
                                Code={"ZipFile": lambda_zip()})


def seed_route53(k):
    zone = k("route53").create_hosted_zone(Name="compat.example.com", CallerReference="compat-seed")
    return {"zone_id": zone["HostedZone"]["Id"].split("/")[-1]}


def seed_eks(k, refs):
    k("eks").create_cluster(name="compat-eks", roleArn=ROLE_ARN, resourcesVpcConfig={"subnetIds": [refs["subnet1"], refs["subnet2"]]})


def seed_ds(k, refs):
    k("ds").create_directory(Name="corp.compat.example", Password="Passw0rd!23", Size="Small",
                             VpcSettings={"VpcId": refs["vpc_id"], "SubnetIds": [refs["subnet1"], refs["subnet2"]]})


def seed_cognito(k):
    return {"pool_id": k("cognito-idp").create_user_pool(PoolName="compat-pool")["UserPool"]["Id"]}


def seed_acm(k):
    return {"cert_arn": k("acm").request_certificate(DomainName="compat.example.com")["CertificateArn"]}


def seed_organizations(k):
    c = k("organizations")
    c.create_organization(FeatureSet="ALL")
    return {"root_id": c.list_roots()["Roots"][0]["Id"]}


def seed_config(k):
    c = k("config")
    c.put_configuration_recorder(ConfigurationRecorder={"name": "compat-recorder", "roleARN": ROLE_ARN,
                                                        "recordingGroup": {"allSupported": True, "includeGlobalResourceTypes": False}})
    c.put_config_rule(ConfigRule={"ConfigRuleName": "compat-rule", "Source": {"Owner": "AWS", "SourceIdentifier": "S3_BUCKET_VERSIONING_ENABLED"}})


def seed_xray(k):
    k("xray").put_trace_segments(TraceSegmentDocuments=[segment(1)])


def seed_tagging(k):
    # A Lambda function: moto's tagging API both tags and lists those (not SNS, SQS, ECS, KMS;
    # RDS parameter groups are tagged but never listed).
    k("lambda").create_function(FunctionName="compat-tagged-fn", Runtime="python3.11", Role=ROLE_ARN, Handler="index.handler",
                                Code={"ZipFile": lambda_zip()}, Tags={"compat": "seed"})


def simple(client, method, **params):
    """A seed that is one call."""
    return lambda k: getattr(k(client), method)(**params) and None


Q = "<<q_compat-queue>>"
TAGGED_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:compat-tagged-fn"

SERVICES = [
    Service("sts", seed_sts, [
        R("get-caller-identity", ["sts", "get-caller-identity"], "c.get_caller_identity()"),
        # Sensitive (returns credentials): gated like a mutation; nothing to observe afterwards.
        M("assume-role", ["sts", "assume-role", "--role-arn", f"arn:aws:iam::{ACCOUNT}:role/compat-sts-role", "--role-session-name", "compat-<<who>>"],
          f"c.assume_role(RoleArn='arn:aws:iam::{ACCOUNT}:role/compat-sts-role', RoleSessionName='compat-<<who>>')"),
    ]),
    Service("iam", seed_iam, [
        R("list-users", ["iam", "list-users", "--path-prefix", "/compat/"], "c.list_users(PathPrefix='/compat/')"),
        R("get-user", ["iam", "get-user", "--user-name", "compat-user"], "c.get_user(UserName='compat-user')"),
        R("get-role", ["iam", "get-role", "--role-name", "compat-role"], "c.get_role(RoleName='compat-role')"),
        M("create-user", ["iam", "create-user", "--user-name", "compat-<<who>>-user", "--path", "/compat/"],
          "c.create_user(UserName='compat-<<who>>-user', Path='/compat/')",
          verify="pick(c.get_user(UserName='compat-<<who>>-user')['User'], 'UserName', 'Path', 'Arn')"),
        M("put-user-policy", ["iam", "put-user-policy", "--user-name", "compat-user", "--policy-name", "compat-<<who>>",
                              "--policy-document", SCP],
          f"c.put_user_policy(UserName='compat-user', PolicyName='compat-<<who>>', PolicyDocument={SCP!r})",
          verify="pick(c.get_user_policy(UserName='compat-user', PolicyName='compat-<<who>>'), 'PolicyName', 'PolicyDocument')"),
    ]),
    Service("s3", seed_s3, [
        R("ls", ["s3", "ls"], "sorted(b['Name'] for b in c.list_buckets()['Buckets'])", out="text"),
        R("ls-prefix-recursive", ["s3", "ls", f"s3://{BUCKET}/data/", "--recursive"],
          f"c.list_objects_v2(Bucket='{BUCKET}', Prefix='data/')", out="text"),
        R("ls-prefix", ["s3", "ls", f"s3://{BUCKET}/data/"],
          f"c.list_objects_v2(Bucket='{BUCKET}', Prefix='data/', Delimiter='/')", out="text"),
        # Pagination: the CLI follows the continuation tokens itself; the paginator's pages are kept apart.
        R("paginate", ["s3api", "list-objects-v2", "--bucket", BUCKET, "--page-size", "2"],
          f"[[o['Key'] for o in p.get('Contents', [])] for p in c.get_paginator('list_objects_v2').paginate(Bucket='{BUCKET}', PaginationConfig={{'PageSize': 2}})]"),
        R("cp-down", ["s3", "cp", f"s3://{BUCKET}/data/a.txt", "got.txt"],
          f"c.download_file('{BUCKET}', 'data/a.txt', 'got.txt') or read_file('got.txt')", out="files:."),
        R("cp-down-recursive", ["s3", "cp", f"s3://{BUCKET}/data/", "down", "--recursive"], out="files:down"),
        R("sync-down", ["s3", "sync", f"s3://{BUCKET}/data/", "synced"], out="files:synced"),
        R("sync-down-prefix-exclude", ["s3", "sync", f"s3://{BUCKET}/data/", "synced", "--exclude", "sub/*"], out="files:synced"),
        # Presigned URLs are made client-side with the sandbox's dummy keys and fetched from the
        # broker (http://127.0.0.1:8181/svc/s3/...), which checks the query signature.
        R("presign-get", ["s3", "presign", f"s3://{BUCKET}/data/b.txt"],
          f"get_url(c.generate_presigned_url('get_object', Params={{'Bucket': '{BUCKET}', 'Key': 'data/b.txt'}}))", out="url"),
        R("presign-get-sigv4", boto3=(
            "import botocore.config\n"
            "s = client('s3', config=botocore.config.Config(signature_version='s3v4'))\n"
            f"result = get_url(s.generate_presigned_url('get_object', Params={{'Bucket': '{BUCKET}', 'Key': 'data/b.txt'}}))")),
        R("ls-odd-keys", ["s3", "ls", f"s3://{BUCKET}/odd/", "--recursive"], f"c.list_objects_v2(Bucket='{BUCKET}', Prefix='odd/')", out="text"),
        R("cp-down-odd-keys", ["s3", "cp", f"s3://{BUCKET}/odd/", "down", "--recursive"],
          f"{{k: c.get_object(Bucket='{BUCKET}', Key=k)['Body'].read() for k in {ODD_KEYS!r}}}", out="files:down"),
        R("paginate-v1", ["s3api", "list-objects", "--bucket", BUCKET, "--page-size", "3"],
          f"[[o['Key'] for o in p.get('Contents', [])] for p in c.get_paginator('list_objects').paginate(Bucket='{BUCKET}', PaginationConfig={{'PageSize': 3}})]"),
        R("get-object", ["s3api", "get-object", "--bucket", BUCKET, "--key", "data/c.txt", "obj.txt"],
          f"c.get_object(Bucket='{BUCKET}', Key='data/c.txt')['Body'].read()"),
        R("head-object", ["s3api", "head-object", "--bucket", BUCKET, "--key", "data/c.txt"],
          f"c.head_object(Bucket='{BUCKET}', Key='data/c.txt')"),
        M("upload-small", ["s3", "cp", "up.txt", f"s3://{BUCKET}/up-<<who>>/up.txt"],
          f"c.upload_file('up.txt', '{BUCKET}', 'up-<<who>>/up.txt')", files={"up.txt": {"text": "uploaded\n"}},
          verify="s3_tree(c, 'up-<<who>>/')"),
        M("upload-odd-key", ["s3", "cp", "up.txt", f"s3://{BUCKET}/odd-<<who>>/with space+ünï=&.txt"],
          f"c.put_object(Bucket='{BUCKET}', Key='odd-<<who>>/with space+ünï=&.txt', Body=read_file('up.txt'))",
          files={"up.txt": {"text": "odd\n"}}, verify="s3_tree(c, 'odd-<<who>>/')"),
        M("sync-up-odd-names", ["s3", "sync", "odd site", f"s3://{BUCKET}/syncodd-<<who>>/"], files=ODD_SITE, shim=True,
          verify="s3_tree(c, 'syncodd-<<who>>/')"),
        M("put-object", ["s3api", "put-object", "--bucket", BUCKET, "--key", "put-<<who>>.txt", "--body", "up.txt"],
          f"c.put_object(Bucket='{BUCKET}', Key='put-<<who>>.txt', Body=read_file('up.txt'))", files={"up.txt": {"text": "put\n"}},
          verify="s3_tree(c, 'put-<<who>>')"),
        # 9 MiB: the CLI goes multipart at 8 MiB; boto3 is told to at 5 MiB. One proposal each.
        M("upload-multipart", ["s3", "cp", "big.bin", f"s3://{BUCKET}/big-<<who>>/big.bin"],
          "from boto3.s3.transfer import TransferConfig\n"
          f"c.upload_file('big.bin', '{BUCKET}', 'big-<<who>>/big.bin', Config=TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20))",
          files=BIG, verify="s3_tree(c, 'big-<<who>>/')"),
        M("sync-up", ["s3", "sync", "site", f"s3://{BUCKET}/sync-<<who>>/"], files=SITE, shim=True,
          verify="s3_tree(c, 'sync-<<who>>/')"),
        M("sync-up-prefix-exclude", ["s3", "sync", "site", f"s3://{BUCKET}/syncx-<<who>>/pre/", "--exclude", "js/*"], files=SITE, shim=True,
          verify="s3_tree(c, 'syncx-<<who>>/')"),
        M("cp-up-recursive", ["s3", "cp", "site", f"s3://{BUCKET}/rcp-<<who>>/", "--recursive"], files=SITE, shim=True,
          verify="s3_tree(c, 'rcp-<<who>>/')"),
        M("rm-recursive", ["s3", "rm", f"s3://{BUCKET}/rm-<<who>>/", "--recursive"],
          f"c.delete_objects(Bucket='{BUCKET}', Delete={{'Objects': [{{'Key': 'rm-<<who>>/1.txt'}}, {{'Key': 'rm-<<who>>/2.txt'}}]}})",
          shim=True, verify="s3_tree(c, 'rm-<<who>>/')"),
        M("mv", ["s3", "mv", f"s3://{BUCKET}/mv-<<who>>.txt", f"s3://{BUCKET}/moved-<<who>>.txt"], shim=True,
          verify="{'from': s3_tree(c, 'mv-<<who>>'), 'to': s3_tree(c, 'moved-<<who>>')}"),
        M("copy-object", ["s3", "cp", f"s3://{BUCKET}/copy-src-<<who>>.txt", f"s3://{BUCKET}/copy-dst-<<who>>.txt"],
          f"c.copy_object(Bucket='{BUCKET}', Key='copy-dst-<<who>>.txt', CopySource={{'Bucket': '{BUCKET}', 'Key': 'copy-src-<<who>>.txt'}})",
          verify="s3_tree(c, 'copy-dst-<<who>>')"),
        M("rm-one", ["s3", "rm", f"s3://{BUCKET}/del-<<who>>.txt"], f"c.delete_object(Bucket='{BUCKET}', Key='del-<<who>>.txt')",
          verify="s3_tree(c, 'del-<<who>>')"),
        M("make-bucket", ["s3", "mb", "s3://compat-<<who>>-made"], "c.create_bucket(Bucket='compat-<<who>>-made')",
          verify="sorted(b['Name'] for b in c.list_buckets()['Buckets'] if b['Name'] == 'compat-<<who>>-made')"),
    ]),
    Service("ec2", seed_ec2, [
        R("describe-security-groups", ["ec2", "describe-security-groups", "--group-names", "compat-sg"],
          "c.describe_security_groups(GroupNames=['compat-sg'])"),
        R("describe-vpcs", ["ec2", "describe-vpcs"], "c.describe_vpcs()"),
        R("describe-availability-zones", ["ec2", "describe-availability-zones"], "c.describe_availability_zones()"),
        M("create-security-group", ["ec2", "create-security-group", "--group-name", "compat-<<who>>-sg", "--description", "compat"],
          "c.create_security_group(GroupName='compat-<<who>>-sg', Description='compat')",
          verify="pick(c.describe_security_groups(GroupNames=['compat-<<who>>-sg'])['SecurityGroups'][0], 'GroupName', 'Description', 'VpcId', 'IpPermissionsEgress')"),
        M("run-instances", ["ec2", "run-instances", "--image-id", "<<ami>>", "--instance-type", "t2.micro", "--count", "1",
                            "--tag-specifications", j([{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "compat-<<who>>-vm"}]}])],
          "c.run_instances(ImageId='<<ami>>', InstanceType='t2.micro', MinCount=1, MaxCount=1, "
          "TagSpecifications=[{'ResourceType': 'instance', 'Tags': [{'Key': 'Name', 'Value': 'compat-<<who>>-vm'}]}])",
          verify="[pick(i, 'ImageId', 'InstanceType', 'State.Name', 'Tags') for r in c.describe_instances(Filters=[{'Name': 'tag:Name', 'Values': ['compat-<<who>>-vm']}])['Reservations'] for i in r['Instances']]"),
    ]),
    Service("sqs", seed_sqs, [
        R("list-queues", ["sqs", "list-queues", "--queue-name-prefix", "compat-"], "c.list_queues(QueueNamePrefix='compat-')"),
        R("get-queue-url", ["sqs", "get-queue-url", "--queue-name", "compat-queue"], "c.get_queue_url(QueueName='compat-queue')"),
        R("get-queue-attributes", ["sqs", "get-queue-attributes", "--queue-url", Q, "--attribute-names", "All"],
          f"c.get_queue_attributes(QueueUrl='{Q}', AttributeNames=['All'])"),
        M("send-message", ["sqs", "send-message", "--queue-url", "<<q_compat-send-<<who>>>>", "--message-body", "hello <<who>>"],
          "c.send_message(QueueUrl='<<q_compat-send-<<who>>>>', MessageBody='hello <<who>>')",
          verify="sorted(m['Body'] for m in c.receive_message(QueueUrl='<<q_compat-send-<<who>>>>', MaxNumberOfMessages=10, VisibilityTimeout=0).get('Messages', []))"),
        # Sensitive (dequeues): a proposal. VisibilityTimeout 0 leaves the message visible.
        M("receive-message", ["sqs", "receive-message", "--queue-url", "<<q_compat-recv-<<who>>>>", "--visibility-timeout", "0"],
          "c.receive_message(QueueUrl='<<q_compat-recv-<<who>>>>', VisibilityTimeout=0)",
          verify="c.get_queue_attributes(QueueUrl='<<q_compat-recv-<<who>>>>', AttributeNames=['ApproximateNumberOfMessages'])['Attributes']"),
        # Delete needs a receipt handle: receive first (inside Airlock that is a proposal too: the
        # driver asks for its approval and takes the handle from `airlock wait`), then delete.
        M("delete-message", ["sqs", "delete-message", "--queue-url", "<<q_compat-del-<<who>>>>", "--receipt-handle", "<<$handle>>"],
          "c.delete_message(QueueUrl='<<q_compat-del-<<who>>>>', ReceiptHandle='<<$handle>>')",
          pre_cli=[{"argv": ["sqs", "receive-message", "--queue-url", "<<q_compat-del-<<who>>>>", "--visibility-timeout", "0"],
                    "capture": {"handle": r'"ReceiptHandle"\s*:\s*"([^"]+)"'}}],
          pre_boto3=[{"code": "c.receive_message(QueueUrl='<<q_compat-del-<<who>>>>', VisibilityTimeout=0)",
                      "capture": {"handle": r'"ReceiptHandle"\s*:\s*"([^"]+)"'}}],
          verify="sorted(m['Body'] for m in c.receive_message(QueueUrl='<<q_compat-del-<<who>>>>', MaxNumberOfMessages=10, VisibilityTimeout=0).get('Messages', []))"),
    ]),
    Service("sns", seed_sns, [
        R("list-topics", ["sns", "list-topics"], "c.list_topics()"),
        R("get-topic-attributes", ["sns", "get-topic-attributes", "--topic-arn", f"arn:aws:sns:{REGION}:{ACCOUNT}:compat-topic"],
          f"c.get_topic_attributes(TopicArn='arn:aws:sns:{REGION}:{ACCOUNT}:compat-topic')"),
        M("create-topic", ["sns", "create-topic", "--name", "compat-<<who>>-topic"], "c.create_topic(Name='compat-<<who>>-topic')",
          verify=f"c.get_topic_attributes(TopicArn='arn:aws:sns:{REGION}:{ACCOUNT}:compat-<<who>>-topic')['Attributes']"),
        M("subscribe", ["sns", "subscribe", "--topic-arn", f"arn:aws:sns:{REGION}:{ACCOUNT}:compat-topic", "--protocol", "sqs",
                        "--notification-endpoint", f"arn:aws:sqs:{REGION}:{ACCOUNT}:compat-sub-<<who>>"],
          f"c.subscribe(TopicArn='arn:aws:sns:{REGION}:{ACCOUNT}:compat-topic', Protocol='sqs', Endpoint='arn:aws:sqs:{REGION}:{ACCOUNT}:compat-sub-<<who>>')",
          verify=f"[pick(s, 'Protocol', 'Endpoint') for s in c.list_subscriptions_by_topic(TopicArn='arn:aws:sns:{REGION}:{ACCOUNT}:compat-topic')['Subscriptions'] if s['Endpoint'].endswith('compat-sub-<<who>>')]"),
    ]),
    Service("dynamodb", seed_dynamodb, [
        R("describe-table", ["dynamodb", "describe-table", "--table-name", "compat-table"], "c.describe_table(TableName='compat-table')"),
        R("query", ["dynamodb", "query", "--table-name", "compat-table", "--key-condition-expression", "pk = :p",
                    "--expression-attribute-values", j({":p": {"S": "a"}})],
          "c.query(TableName='compat-table', KeyConditionExpression='pk = :p', ExpressionAttributeValues={':p': {'S': 'a'}})"),
        R("scan", ["dynamodb", "scan", "--table-name", "compat-table"], "c.scan(TableName='compat-table')"),
        R("scan-paginated", ["dynamodb", "scan", "--table-name", "compat-table", "--page-size", "2"],
          "[p['Items'] for p in c.get_paginator('scan').paginate(TableName='compat-table', PaginationConfig={'PageSize': 2})]"),
        R("get-item", ["dynamodb", "get-item", "--table-name", "compat-table", "--key", j({"pk": {"S": "a"}, "sk": {"S": "1"}})],
          "c.get_item(TableName='compat-table', Key={'pk': {'S': 'a'}, 'sk': {'S': '1'}})"),
        M("put-item", ["dynamodb", "put-item", "--table-name", "compat-table", "--item", j({"pk": {"S": "<<who>>"}, "sk": {"S": "1"}, "v": {"S": "new"}})],
          "c.put_item(TableName='compat-table', Item={'pk': {'S': '<<who>>'}, 'sk': {'S': '1'}, 'v': {'S': 'new'}})",
          verify="c.get_item(TableName='compat-table', Key={'pk': {'S': '<<who>>'}, 'sk': {'S': '1'}})"),
        M("update-item", ["dynamodb", "update-item", "--table-name", "compat-table", "--key", j({"pk": {"S": "upd-<<who>>"}, "sk": {"S": "1"}}),
                          "--update-expression", "SET v = :v", "--expression-attribute-values", j({":v": {"S": "updated"}})],
          "c.update_item(TableName='compat-table', Key={'pk': {'S': 'upd-<<who>>'}, 'sk': {'S': '1'}}, UpdateExpression='SET v = :v', ExpressionAttributeValues={':v': {'S': 'updated'}})",
          verify="c.get_item(TableName='compat-table', Key={'pk': {'S': 'upd-<<who>>'}, 'sk': {'S': '1'}})"),
        M("create-table", ["dynamodb", "create-table", "--table-name", "compat-<<who>>-table", "--billing-mode", "PAY_PER_REQUEST",
                           "--key-schema", "AttributeName=id,KeyType=HASH", "--attribute-definitions", "AttributeName=id,AttributeType=S"],
          "c.create_table(TableName='compat-<<who>>-table', BillingMode='PAY_PER_REQUEST', KeySchema=[{'AttributeName': 'id', 'KeyType': 'HASH'}], AttributeDefinitions=[{'AttributeName': 'id', 'AttributeType': 'S'}])",
          verify="pick(c.describe_table(TableName='compat-<<who>>-table')['Table'], 'TableName', 'KeySchema', 'AttributeDefinitions', 'TableStatus', 'BillingModeSummary.BillingMode')"),
    ]),
    Service("logs", seed_logs, [
        R("describe-log-groups", ["logs", "describe-log-groups", "--log-group-name-prefix", "/compat"], "c.describe_log_groups(logGroupNamePrefix='/compat')"),
        R("describe-log-streams", ["logs", "describe-log-streams", "--log-group-name", "/compat/group"], "c.describe_log_streams(logGroupName='/compat/group')"),
        R("get-log-events", ["logs", "get-log-events", "--log-group-name", "/compat/group", "--log-stream-name", "s1", "--start-from-head"],
          "c.get_log_events(logGroupName='/compat/group', logStreamName='s1', startFromHead=True)"),
        R("filter-log-events", ["logs", "filter-log-events", "--log-group-name", "/compat/group"], "c.filter_log_events(logGroupName='/compat/group')"),
        M("create-log-group", ["logs", "create-log-group", "--log-group-name", "/compat/<<who>>"], "c.create_log_group(logGroupName='/compat/<<who>>')",
          verify="[pick(g, 'logGroupName', 'arn', 'storedBytes') for g in c.describe_log_groups(logGroupNamePrefix='/compat/<<who>>')['logGroups']]"),
        M("put-log-events", ["logs", "put-log-events", "--log-group-name", "/compat/group", "--log-stream-name", "<<who>>-stream",
                             "--log-events", j([{"timestamp": NOW_S * 1000, "message": "hello <<who>>"}])],
          f"c.put_log_events(logGroupName='/compat/group', logStreamName='<<who>>-stream', logEvents=[{{'timestamp': {NOW_S * 1000}, 'message': 'hello <<who>>'}}])",
          verify="[pick(e, 'message') for e in c.get_log_events(logGroupName='/compat/group', logStreamName='<<who>>-stream', startFromHead=True)['events']]"),
    ]),
    Service("cloudformation", seed_cloudformation, [
        R("describe-stacks", ["cloudformation", "describe-stacks", "--stack-name", "compat-stack"], "c.describe_stacks(StackName='compat-stack')"),
        R("list-stack-resources", ["cloudformation", "list-stack-resources", "--stack-name", "compat-stack"], "c.list_stack_resources(StackName='compat-stack')"),
        R("get-template", ["cloudformation", "get-template", "--stack-name", "compat-stack"], "c.get_template(StackName='compat-stack')"),
        # CreateChangeSet, a waiter, ExecuteChangeSet, a waiter: one proposal through the shim.
        M("deploy", ["cloudformation", "deploy", "--stack-name", "compat-<<who>>-deploy", "--template-file", "template.json"], shim=True,
          files={"template.json": {"text": json.dumps(cfn_template("<<who>>"), indent=1)}},
          verify="{'stack': pick(c.describe_stacks(StackName='compat-<<who>>-deploy')['Stacks'][0], 'StackName', 'StackStatus'), "
                 "'resources': sorted((r['LogicalResourceId'], r['ResourceType'], r['ResourceStatus']) for r in c.list_stack_resources(StackName='compat-<<who>>-deploy')['StackResourceSummaries'])}"),
        M("create-stack", ["cloudformation", "create-stack", "--stack-name", "compat-<<who>>-stack", "--template-body", "file://template.json"],
          "c.create_stack(StackName='compat-<<who>>-stack', TemplateBody=read_file('template.json').decode())",
          files={"template.json": {"text": json.dumps(cfn_template("<<who>>-stack"))}},
          verify="{'stack': pick(c.describe_stacks(StackName='compat-<<who>>-stack')['Stacks'][0], 'StackName', 'StackStatus'), "
                 "'resources': sorted((r['LogicalResourceId'], r['ResourceType'], r['ResourceStatus']) for r in c.list_stack_resources(StackName='compat-<<who>>-stack')['StackResourceSummaries'])}"),
    ]),
    Service("kms", seed_kms, [
        R("list-aliases", ["kms", "list-aliases"], "c.list_aliases()"),
        R("describe-key", ["kms", "describe-key", "--key-id", "alias/compat-key"], "c.describe_key(KeyId='alias/compat-key')"),
        R("list-keys", ["kms", "list-keys"], "c.list_keys()"),
        M("create-key", ["kms", "create-key", "--description", "compat-<<who>>-key", "--tags", "TagKey=compat,TagValue=<<who>>"],
          "c.create_key(Description='compat-<<who>>-key', Tags=[{'TagKey': 'compat', 'TagValue': '<<who>>'}])",
          verify="[pick(m, 'Description', 'KeyUsage', 'KeySpec', 'KeyState', 'Enabled') for m in (c.describe_key(KeyId=k['KeyId'])['KeyMetadata'] for k in c.list_keys()['Keys']) if m.get('Description') == 'compat-<<who>>-key']"),
        M("create-alias", ["kms", "create-alias", "--alias-name", "alias/compat-<<who>>", "--target-key-id", "<<key_id>>"],
          "c.create_alias(AliasName='alias/compat-<<who>>', TargetKeyId='<<key_id>>')",
          verify="[pick(a, 'AliasName', 'TargetKeyId') for a in c.list_aliases()['Aliases'] if a['AliasName'] == 'alias/compat-<<who>>']"),
    ]),
    Service("ssm", seed_ssm, [
        R("get-parameter", ["ssm", "get-parameter", "--name", "/compat/param"], "c.get_parameter(Name='/compat/param')"),
        R("get-parameters-by-path", ["ssm", "get-parameters-by-path", "--path", "/compat"], "c.get_parameters_by_path(Path='/compat')"),
        R("describe-parameters", ["ssm", "describe-parameters"], "c.describe_parameters()"),
        M("put-parameter", ["ssm", "put-parameter", "--name", "/compat/<<who>>", "--value", "v-<<who>>", "--type", "String"],
          "c.put_parameter(Name='/compat/<<who>>', Value='v-<<who>>', Type='String')",
          verify="pick(c.get_parameter(Name='/compat/<<who>>')['Parameter'], 'Name', 'Type', 'Value', 'Version')"),
    ]),
    Service("secretsmanager", seed_secretsmanager, [
        R("describe-secret", ["secretsmanager", "describe-secret", "--secret-id", "compat-secret"], "c.describe_secret(SecretId='compat-secret')"),
        R("list-secrets", ["secretsmanager", "list-secrets"], "c.list_secrets()"),
        M("create-secret", ["secretsmanager", "create-secret", "--name", "compat-<<who>>-secret", "--secret-string", "v-<<who>>"],
          "c.create_secret(Name='compat-<<who>>-secret', SecretString='v-<<who>>')",
          verify="pick(c.get_secret_value(SecretId='compat-<<who>>-secret'), 'Name', 'SecretString')"),
        # Sensitive read: gated; nothing changes.
        M("get-secret-value", ["secretsmanager", "get-secret-value", "--secret-id", "compat-secret"], "c.get_secret_value(SecretId='compat-secret')"),
    ]),
    Service("lambda", seed_lambda, [
        R("list-functions", ["lambda", "list-functions"], "c.list_functions()"),
        R("get-function-configuration", ["lambda", "get-function-configuration", "--function-name", "compat-fn"],
          "c.get_function_configuration(FunctionName='compat-fn')"),
        M("create-function", ["lambda", "create-function", "--function-name", "compat-<<who>>-fn", "--runtime", "python3.11", "--role", ROLE_ARN,
                              "--handler", "index.handler", "--zip-file", "fileb://fn.zip"],
          f"c.create_function(FunctionName='compat-<<who>>-fn', Runtime='python3.11', Role='{ROLE_ARN}', Handler='index.handler', Code={{'ZipFile': read_file('fn.zip')}})",
          files={"fn.zip": {"b64": base64.b64encode(lambda_zip()).decode()}},
          verify="pick(c.get_function_configuration(FunctionName='compat-<<who>>-fn'), 'FunctionName', 'Runtime', 'Role', 'Handler', 'CodeSize', 'CodeSha256')"),
    ]),
    Service("ecr", simple("ecr", "create_repository", repositoryName="compat-repo"), [
        R("describe-repositories", ["ecr", "describe-repositories"], "c.describe_repositories()"),
        M("create-repository", ["ecr", "create-repository", "--repository-name", "compat-<<who>>-repo"], "c.create_repository(repositoryName='compat-<<who>>-repo')",
          verify="pick(c.describe_repositories(repositoryNames=['compat-<<who>>-repo'])['repositories'][0], 'repositoryName', 'repositoryUri', 'imageTagMutability')"),
    ]),
    Service("ecs", simple("ecs", "create_cluster", clusterName="compat-cluster"), [
        R("list-clusters", ["ecs", "list-clusters"], "c.list_clusters()"),
        R("describe-clusters", ["ecs", "describe-clusters", "--clusters", "compat-cluster"], "c.describe_clusters(clusters=['compat-cluster'])"),
        M("create-cluster", ["ecs", "create-cluster", "--cluster-name", "compat-<<who>>-cluster"], "c.create_cluster(clusterName='compat-<<who>>-cluster')",
          verify="pick(c.describe_clusters(clusters=['compat-<<who>>-cluster'])['clusters'][0], 'clusterName', 'status')"),
        M("register-task-definition", ["ecs", "register-task-definition", "--family", "compat-<<who>>-task", "--container-definitions",
                                       j([{"name": "app", "image": "busybox", "memory": 64}])],
          "c.register_task_definition(family='compat-<<who>>-task', containerDefinitions=[{'name': 'app', 'image': 'busybox', 'memory': 64}])",
          verify="pick(c.describe_task_definition(taskDefinition='compat-<<who>>-task')['taskDefinition'], 'family', 'revision', 'containerDefinitions')"),
    ]),
    Service("eks", None, [
        R("list-clusters", ["eks", "list-clusters"], "c.list_clusters()"),
        R("describe-cluster", ["eks", "describe-cluster", "--name", "compat-eks"], "c.describe_cluster(name='compat-eks')"),
        M("create-cluster", ["eks", "create-cluster", "--name", "compat-<<who>>-eks", "--role-arn", ROLE_ARN,
                             "--resources-vpc-config", "subnetIds=<<subnet1>>,<<subnet2>>"],
          f"c.create_cluster(name='compat-<<who>>-eks', roleArn='{ROLE_ARN}', resourcesVpcConfig={{'subnetIds': ['<<subnet1>>', '<<subnet2>>']}})",
          verify="pick(c.describe_cluster(name='compat-<<who>>-eks')['cluster'], 'name', 'roleArn', 'status', 'version', 'resourcesVpcConfig.subnetIds')"),
    ]),
    Service("elbv2", simple("elbv2", "create_target_group", Name="compat-tg", TargetType="lambda"), [
        R("describe-target-groups", ["elbv2", "describe-target-groups", "--names", "compat-tg"], "c.describe_target_groups(Names=['compat-tg'])"),
        M("create-target-group", ["elbv2", "create-target-group", "--name", "compat-<<who>>-tg", "--target-type", "lambda"],
          "c.create_target_group(Name='compat-<<who>>-tg', TargetType='lambda')",
          verify="pick(c.describe_target_groups(Names=['compat-<<who>>-tg'])['TargetGroups'][0], 'TargetGroupName', 'TargetType')"),
    ]),
    Service("autoscaling", simple("autoscaling", "create_launch_configuration", LaunchConfigurationName="compat-lc", ImageId="ami-12c6146b", InstanceType="t2.micro"), [
        R("describe-launch-configurations", ["autoscaling", "describe-launch-configurations"], "c.describe_launch_configurations()"),
        M("create-launch-configuration", ["autoscaling", "create-launch-configuration", "--launch-configuration-name", "compat-<<who>>-lc",
                                          "--image-id", "ami-12c6146b", "--instance-type", "t2.micro"],
          "c.create_launch_configuration(LaunchConfigurationName='compat-<<who>>-lc', ImageId='ami-12c6146b', InstanceType='t2.micro')",
          verify="pick(c.describe_launch_configurations(LaunchConfigurationNames=['compat-<<who>>-lc'])['LaunchConfigurations'][0], 'LaunchConfigurationName', 'ImageId', 'InstanceType')"),
    ]),
    Service("route53", seed_route53, [
        R("list-hosted-zones", ["route53", "list-hosted-zones"], "c.list_hosted_zones()"),
        R("list-resource-record-sets", ["route53", "list-resource-record-sets", "--hosted-zone-id", "<<zone_id>>"],
          "c.list_resource_record_sets(HostedZoneId='<<zone_id>>')"),
        M("create-hosted-zone", ["route53", "create-hosted-zone", "--name", "<<who>>.compat.example", "--caller-reference", "compat-<<who>>"],
          "c.create_hosted_zone(Name='<<who>>.compat.example', CallerReference='compat-<<who>>')",
          verify="[pick(z, 'Name', 'Config', 'ResourceRecordSetCount') for z in c.list_hosted_zones()['HostedZones'] if z['Name'] == '<<who>>.compat.example.']"),
        M("change-resource-record-sets", ["route53", "change-resource-record-sets", "--hosted-zone-id", "<<zone_id>>", "--change-batch",
                                          j({"Changes": [{"Action": "CREATE", "ResourceRecordSet": {"Name": "<<who>>.compat.example.com", "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "192.0.2.1"}]}}]})],
          "c.change_resource_record_sets(HostedZoneId='<<zone_id>>', ChangeBatch={'Changes': [{'Action': 'CREATE', 'ResourceRecordSet': {'Name': '<<who>>.compat.example.com', 'Type': 'A', 'TTL': 60, 'ResourceRecords': [{'Value': '192.0.2.1'}]}}]})",
          verify="[r for r in c.list_resource_record_sets(HostedZoneId='<<zone_id>>')['ResourceRecordSets'] if r['Name'].startswith('<<who>>.')]"),
    ]),
    Service("cloudwatch", simple("cloudwatch", "put_metric_alarm", AlarmName="compat-alarm", MetricName="M", Namespace="compat", Statistic="Average",
                                 Period=60, EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanThreshold"), [
        R("describe-alarms", ["cloudwatch", "describe-alarms", "--alarm-names", "compat-alarm"], "c.describe_alarms(AlarmNames=['compat-alarm'])"),
        M("put-metric-alarm", ["cloudwatch", "put-metric-alarm", "--alarm-name", "compat-<<who>>-alarm", "--metric-name", "M", "--namespace", "compat",
                               "--statistic", "Average", "--period", "60", "--evaluation-periods", "1", "--threshold", "2", "--comparison-operator", "GreaterThanThreshold"],
          "c.put_metric_alarm(AlarmName='compat-<<who>>-alarm', MetricName='M', Namespace='compat', Statistic='Average', Period=60, EvaluationPeriods=1, Threshold=2.0, ComparisonOperator='GreaterThanThreshold')",
          verify="pick(c.describe_alarms(AlarmNames=['compat-<<who>>-alarm'])['MetricAlarms'][0], 'AlarmName', 'MetricName', 'Namespace', 'Threshold', 'ComparisonOperator', 'StateValue')"),
        M("put-metric-data", ["cloudwatch", "put-metric-data", "--namespace", "compat/<<who>>", "--metric-name", "Hits", "--value", "1"],
          "c.put_metric_data(Namespace='compat/<<who>>', MetricData=[{'MetricName': 'Hits', 'Value': 1.0}])",
          verify="c.list_metrics(Namespace='compat/<<who>>')['Metrics']"),
    ]),
    Service("events", simple("events", "put_rule", Name="compat-rule", ScheduleExpression="rate(5 minutes)"), [
        R("list-rules", ["events", "list-rules", "--name-prefix", "compat"], "c.list_rules(NamePrefix='compat')"),
        R("describe-rule", ["events", "describe-rule", "--name", "compat-rule"], "c.describe_rule(Name='compat-rule')"),
        M("put-rule", ["events", "put-rule", "--name", "compat-<<who>>-rule", "--schedule-expression", "rate(10 minutes)"],
          "c.put_rule(Name='compat-<<who>>-rule', ScheduleExpression='rate(10 minutes)')",
          verify="pick(c.describe_rule(Name='compat-<<who>>-rule'), 'Name', 'ScheduleExpression', 'State', 'Arn')"),
    ]),
    Service("kinesis", simple("kinesis", "create_stream", StreamName="compat-stream", ShardCount=1), [
        R("list-streams", ["kinesis", "list-streams"], "c.list_streams()"),
        R("describe-stream-summary", ["kinesis", "describe-stream-summary", "--stream-name", "compat-stream"],
          "c.describe_stream_summary(StreamName='compat-stream')"),
        M("create-stream", ["kinesis", "create-stream", "--stream-name", "compat-<<who>>-stream", "--shard-count", "1"],
          "c.create_stream(StreamName='compat-<<who>>-stream', ShardCount=1)",
          verify="pick(c.describe_stream_summary(StreamName='compat-<<who>>-stream')['StreamDescriptionSummary'], 'StreamName', 'StreamStatus', 'OpenShardCount')"),
    ]),
    Service("firehose", simple("firehose", "create_delivery_stream", DeliveryStreamName="compat-fh",
                               ExtendedS3DestinationConfiguration={"RoleARN": ROLE_ARN, "BucketARN": f"arn:aws:s3:::{SHARED_BUCKET}"}), [
        R("list-delivery-streams", ["firehose", "list-delivery-streams"], "c.list_delivery_streams()"),
        R("describe-delivery-stream", ["firehose", "describe-delivery-stream", "--delivery-stream-name", "compat-fh"],
          "c.describe_delivery_stream(DeliveryStreamName='compat-fh')"),
        M("create-delivery-stream", ["firehose", "create-delivery-stream", "--delivery-stream-name", "compat-<<who>>-fh", "--extended-s3-destination-configuration",
                                     j({"RoleARN": ROLE_ARN, "BucketARN": f"arn:aws:s3:::{SHARED_BUCKET}"})],
          f"c.create_delivery_stream(DeliveryStreamName='compat-<<who>>-fh', ExtendedS3DestinationConfiguration={{'RoleARN': '{ROLE_ARN}', 'BucketARN': 'arn:aws:s3:::{SHARED_BUCKET}'}})",
          verify="pick(c.describe_delivery_stream(DeliveryStreamName='compat-<<who>>-fh')['DeliveryStreamDescription'], 'DeliveryStreamName', 'DeliveryStreamStatus', 'DeliveryStreamType')"),
    ]),
    Service("glue", simple("glue", "create_database", DatabaseInput={"Name": "compat_db"}), [
        R("get-databases", ["glue", "get-databases"], "c.get_databases()"),
        R("get-database", ["glue", "get-database", "--name", "compat_db"], "c.get_database(Name='compat_db')"),
        M("create-database", ["glue", "create-database", "--database-input", "Name=compat_<<who>>_db"], "c.create_database(DatabaseInput={'Name': 'compat_<<who>>_db'})",
          verify="pick(c.get_database(Name='compat_<<who>>_db')['Database'], 'Name', 'CatalogId')"),
    ]),
    Service("athena", simple("athena", "create_work_group", Name="compat-wg"), [
        R("list-work-groups", ["athena", "list-work-groups"], "c.list_work_groups()"),
        R("get-work-group", ["athena", "get-work-group", "--work-group", "compat-wg"], "c.get_work_group(WorkGroup='compat-wg')"),
        M("create-work-group", ["athena", "create-work-group", "--name", "compat-<<who>>-wg"], "c.create_work_group(Name='compat-<<who>>-wg')",
          verify="pick(c.get_work_group(WorkGroup='compat-<<who>>-wg')['WorkGroup'], 'Name', 'State')"),
    ]),
    Service("rds", simple("rds", "create_db_parameter_group", DBParameterGroupName="compat-pg", DBParameterGroupFamily="mysql8.0", Description="compat"), [
        R("describe-db-parameter-groups", ["rds", "describe-db-parameter-groups", "--db-parameter-group-name", "compat-pg"],
          "c.describe_db_parameter_groups(DBParameterGroupName='compat-pg')"),
        M("create-db-parameter-group", ["rds", "create-db-parameter-group", "--db-parameter-group-name", "compat-<<who>>-pg",
                                        "--db-parameter-group-family", "mysql8.0", "--description", "compat"],
          "c.create_db_parameter_group(DBParameterGroupName='compat-<<who>>-pg', DBParameterGroupFamily='mysql8.0', Description='compat')",
          verify="c.describe_db_parameter_groups(DBParameterGroupName='compat-<<who>>-pg')['DBParameterGroups']"),
    ]),
    Service("redshift", simple("redshift", "create_cluster_parameter_group", ParameterGroupName="compat-pg", ParameterGroupFamily="redshift-1.0", Description="compat"), [
        R("describe-cluster-parameter-groups", ["redshift", "describe-cluster-parameter-groups", "--parameter-group-name", "compat-pg"],
          "c.describe_cluster_parameter_groups(ParameterGroupName='compat-pg')"),
        M("create-cluster-parameter-group", ["redshift", "create-cluster-parameter-group", "--parameter-group-name", "compat-<<who>>-pg",
                                             "--parameter-group-family", "redshift-1.0", "--description", "compat"],
          "c.create_cluster_parameter_group(ParameterGroupName='compat-<<who>>-pg', ParameterGroupFamily='redshift-1.0', Description='compat')",
          verify="c.describe_cluster_parameter_groups(ParameterGroupName='compat-<<who>>-pg')['ParameterGroups']"),
    ]),
    Service("elasticache", simple("elasticache", "create_user", UserId="compat-user", UserName="compat-user", Engine="redis",
                                  AccessString="on ~* +@all", NoPasswordRequired=True), [
        R("describe-users", ["elasticache", "describe-users", "--user-id", "compat-user"], "c.describe_users(UserId='compat-user')"),
        M("create-user", ["elasticache", "create-user", "--user-id", "compat-<<who>>-user", "--user-name", "compat-<<who>>-user", "--engine", "redis",
                          "--access-string", "on ~* +@all", "--no-password-required"],
          "c.create_user(UserId='compat-<<who>>-user', UserName='compat-<<who>>-user', Engine='redis', AccessString='on ~* +@all', NoPasswordRequired=True)",
          verify="c.describe_users(UserId='compat-<<who>>-user')['Users']"),
    ]),
    Service("opensearch", simple("opensearch", "create_domain", DomainName="compat-domain"), [
        R("list-domain-names", ["opensearch", "list-domain-names"], "c.list_domain_names()"),
        R("describe-domain", ["opensearch", "describe-domain", "--domain-name", "compat-domain"], "c.describe_domain(DomainName='compat-domain')"),
        M("create-domain", ["opensearch", "create-domain", "--domain-name", "compat-<<who>>-dom"], "c.create_domain(DomainName='compat-<<who>>-dom')",
          verify="pick(c.describe_domain(DomainName='compat-<<who>>-dom')['DomainStatus'], 'DomainName', 'ARN', 'EngineVersion', 'Created', 'Deleted')"),
    ]),
    Service("stepfunctions", simple("stepfunctions", "create_state_machine", name="compat-sm", definition=STATE_MACHINE, roleArn=ROLE_ARN), [
        R("list-state-machines", ["stepfunctions", "list-state-machines"], "c.list_state_machines()"),
        R("describe-state-machine", ["stepfunctions", "describe-state-machine", "--state-machine-arn", f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:compat-sm"],
          f"c.describe_state_machine(stateMachineArn='arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:compat-sm')"),
        M("create-state-machine", ["stepfunctions", "create-state-machine", "--name", "compat-<<who>>-sm", "--definition", STATE_MACHINE, "--role-arn", ROLE_ARN],
          f"c.create_state_machine(name='compat-<<who>>-sm', definition={STATE_MACHINE!r}, roleArn='{ROLE_ARN}')",
          verify=f"pick(c.describe_state_machine(stateMachineArn='arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:compat-<<who>>-sm'), 'name', 'definition', 'roleArn', 'status', 'type')"),
    ]),
    Service("apigateway", simple("apigateway", "create_rest_api", name="compat-api"), [
        R("get-rest-apis", ["apigateway", "get-rest-apis"], "c.get_rest_apis()"),
        M("create-rest-api", ["apigateway", "create-rest-api", "--name", "compat-<<who>>-api"], "c.create_rest_api(name='compat-<<who>>-api')",
          verify="[pick(a, 'name', 'apiKeySource', 'endpointConfiguration') for a in c.get_rest_apis()['items'] if a['name'] == 'compat-<<who>>-api']"),
    ]),
    Service("cognito-idp", seed_cognito, [
        R("list-user-pools", ["cognito-idp", "list-user-pools", "--max-results", "10"], "c.list_user_pools(MaxResults=10)"),
        R("describe-user-pool", ["cognito-idp", "describe-user-pool", "--user-pool-id", "<<pool_id>>"], "c.describe_user_pool(UserPoolId='<<pool_id>>')"),
        M("create-user-pool", ["cognito-idp", "create-user-pool", "--pool-name", "compat-<<who>>-pool"], "c.create_user_pool(PoolName='compat-<<who>>-pool')",
          verify="[pick(p, 'Name') for p in c.list_user_pools(MaxResults=50)['UserPools'] if p['Name'] == 'compat-<<who>>-pool']"),
    ]),
    Service("acm", seed_acm, [
        R("list-certificates", ["acm", "list-certificates"], "c.list_certificates()"),
        R("describe-certificate", ["acm", "describe-certificate", "--certificate-arn", "<<cert_arn>>"], "c.describe_certificate(CertificateArn='<<cert_arn>>')"),
        M("request-certificate", ["acm", "request-certificate", "--domain-name", "<<who>>.compat.example"], "c.request_certificate(DomainName='<<who>>.compat.example')",
          # Not Status: moto turns PENDING_VALIDATION into ISSUED after a while (M1's is older).
          verify="[pick(s, 'DomainName', 'Type', 'KeyAlgorithm') for s in c.list_certificates()['CertificateSummaryList'] if s['DomainName'] == '<<who>>.compat.example']"),
    ]),
    Service("ses", simple("ses", "verify_email_identity", EmailAddress="compat@example.com"), [
        R("list-identities", ["ses", "list-identities"], "c.list_identities()"),
        R("get-identity-verification-attributes", ["ses", "get-identity-verification-attributes", "--identities", "compat@example.com"],
          "c.get_identity_verification_attributes(Identities=['compat@example.com'])"),
        M("verify-email-identity", ["ses", "verify-email-identity", "--email-address", "<<who>>@compat.example"], "c.verify_email_identity(EmailAddress='<<who>>@compat.example')",
          verify="c.get_identity_verification_attributes(Identities=['<<who>>@compat.example'])['VerificationAttributes']"),
    ]),
    Service("batch", simple("batch", "create_compute_environment", computeEnvironmentName="compat-ce", type="UNMANAGED", serviceRole=ROLE_ARN), [
        R("describe-compute-environments", ["batch", "describe-compute-environments", "--compute-environments", "compat-ce"],
          "c.describe_compute_environments(computeEnvironments=['compat-ce'])"),
        M("create-compute-environment", ["batch", "create-compute-environment", "--compute-environment-name", "compat-<<who>>-ce", "--type", "UNMANAGED",
                                         "--service-role", ROLE_ARN],
          f"c.create_compute_environment(computeEnvironmentName='compat-<<who>>-ce', type='UNMANAGED', serviceRole='{ROLE_ARN}')",
          verify="[pick(e, 'computeEnvironmentName', 'type', 'state', 'serviceRole') for e in c.describe_compute_environments(computeEnvironments=['compat-<<who>>-ce'])['computeEnvironments']]"),
    ]),
    Service("codecommit", simple("codecommit", "create_repository", repositoryName="compat-repo"), [
        # Not list-repositories: moto 5.2.1 answers it with a 500 (even directly).
        R("get-repository", ["codecommit", "get-repository", "--repository-name", "compat-repo"], "c.get_repository(repositoryName='compat-repo')"),
        M("create-repository", ["codecommit", "create-repository", "--repository-name", "compat-<<who>>-repo"], "c.create_repository(repositoryName='compat-<<who>>-repo')",
          verify="pick(c.get_repository(repositoryName='compat-<<who>>-repo')['repositoryMetadata'], 'repositoryName', 'Arn', 'cloneUrlHttp')"),
    ]),
    Service("codepipeline", simple("codepipeline", "create_pipeline", pipeline=dict(PIPELINE, name="compat-pipe")), [
        R("list-pipelines", ["codepipeline", "list-pipelines"], "c.list_pipelines()"),
        R("get-pipeline", ["codepipeline", "get-pipeline", "--name", "compat-pipe"], "c.get_pipeline(name='compat-pipe')"),
        M("create-pipeline", ["codepipeline", "create-pipeline", "--pipeline", j(dict(PIPELINE, name="compat-<<who>>-pipe"))],
          f"c.create_pipeline(pipeline=dict({PIPELINE!r}, name='compat-<<who>>-pipe'))",
          verify="c.get_pipeline(name='compat-<<who>>-pipe')['pipeline']"),
    ]),
    Service("config", seed_config, [
        R("describe-config-rules", ["configservice", "describe-config-rules"], "c.describe_config_rules()"),
        R("describe-configuration-recorders", ["configservice", "describe-configuration-recorders"], "c.describe_configuration_recorders()"),
        M("put-config-rule", ["configservice", "put-config-rule", "--config-rule", j({"ConfigRuleName": "compat-<<who>>-rule", "Source": {"Owner": "AWS", "SourceIdentifier": "S3_BUCKET_VERSIONING_ENABLED"}})],
          "c.put_config_rule(ConfigRule={'ConfigRuleName': 'compat-<<who>>-rule', 'Source': {'Owner': 'AWS', 'SourceIdentifier': 'S3_BUCKET_VERSIONING_ENABLED'}})",
          verify="[pick(r, 'ConfigRuleName', 'Source', 'ConfigRuleState') for r in c.describe_config_rules(ConfigRuleNames=['compat-<<who>>-rule'])['ConfigRules']]"),
    ]),
    Service("efs", simple("efs", "create_file_system", CreationToken="compat-fs"), [
        R("describe-file-systems", ["efs", "describe-file-systems", "--creation-token", "compat-fs"], "c.describe_file_systems(CreationToken='compat-fs')"),
        M("create-file-system", ["efs", "create-file-system", "--creation-token", "compat-<<who>>-fs"], "c.create_file_system(CreationToken='compat-<<who>>-fs')",
          verify="[pick(f, 'CreationToken', 'LifeCycleState', 'PerformanceMode', 'Encrypted') for f in c.describe_file_systems(CreationToken='compat-<<who>>-fs')['FileSystems']]"),
    ]),
    Service("organizations", seed_organizations, [
        R("describe-organization", ["organizations", "describe-organization"], "c.describe_organization()"),
        R("list-roots", ["organizations", "list-roots"], "c.list_roots()"),
        R("list-policies", ["organizations", "list-policies", "--filter", "SERVICE_CONTROL_POLICY"], "c.list_policies(Filter='SERVICE_CONTROL_POLICY')"),
        M("create-policy", ["organizations", "create-policy", "--name", "compat-<<who>>-scp", "--description", "compat", "--type", "SERVICE_CONTROL_POLICY", "--content", SCP],
          f"c.create_policy(Name='compat-<<who>>-scp', Description='compat', Type='SERVICE_CONTROL_POLICY', Content={SCP!r})",
          verify="[pick(p, 'Name', 'Description', 'Type', 'AwsManaged') for p in c.list_policies(Filter='SERVICE_CONTROL_POLICY')['Policies'] if p['Name'] == 'compat-<<who>>-scp']"),
        M("create-organizational-unit", ["organizations", "create-organizational-unit", "--parent-id", "<<root_id>>", "--name", "compat-<<who>>-ou"],
          "c.create_organizational_unit(ParentId='<<root_id>>', Name='compat-<<who>>-ou')",
          verify="[pick(u, 'Name') for u in c.list_organizational_units_for_parent(ParentId='<<root_id>>')['OrganizationalUnits'] if u['Name'] == 'compat-<<who>>-ou']"),
    ]),
    Service("resourcegroupstaggingapi", seed_tagging, [
        # Without a type filter moto 5.2.1 fails (500) on some backend.
        R("get-resources", ["resourcegroupstaggingapi", "get-resources", "--resource-type-filters", "lambda"], "c.get_resources(ResourceTypeFilters=['lambda'])"),
        M("tag-resources", ["resourcegroupstaggingapi", "tag-resources", "--resource-arn-list", TAGGED_ARN, "--tags", "compat-<<who>>=yes"],
          f"c.tag_resources(ResourceARNList=['{TAGGED_ARN}'], Tags={{'compat-<<who>>': 'yes'}})",
          verify="[{'arn': m['ResourceARN'], 'tags': [t for t in m['Tags'] if t['Key'] == 'compat-<<who>>']} for m in c.get_resources(ResourceTypeFilters=['lambda'], TagFilters=[{'Key': 'compat-<<who>>'}])['ResourceTagMappingList']]"),
    ]),
    Service("servicediscovery", simple("servicediscovery", "create_http_namespace", Name="compat-ns"), [
        R("list-namespaces", ["servicediscovery", "list-namespaces"], "c.list_namespaces()"),
        M("create-http-namespace", ["servicediscovery", "create-http-namespace", "--name", "compat-<<who>>-ns"], "c.create_http_namespace(Name='compat-<<who>>-ns')",
          verify="[pick(n, 'Name', 'Type') for n in c.list_namespaces()['Namespaces'] if n['Name'] == 'compat-<<who>>-ns']"),
    ]),
    Service("backup", simple("backup", "create_backup_vault", BackupVaultName="compat-vault"), [
        R("list-backup-vaults", ["backup", "list-backup-vaults"], "c.list_backup_vaults()"),
        R("describe-backup-vault", ["backup", "describe-backup-vault", "--backup-vault-name", "compat-vault"], "c.describe_backup_vault(BackupVaultName='compat-vault')"),
        M("create-backup-vault", ["backup", "create-backup-vault", "--backup-vault-name", "compat-<<who>>-vault"], "c.create_backup_vault(BackupVaultName='compat-<<who>>-vault')",
          verify="pick(c.describe_backup_vault(BackupVaultName='compat-<<who>>-vault'), 'BackupVaultName', 'BackupVaultArn', 'NumberOfRecoveryPoints')"),
    ]),
    Service("iot", simple("iot", "create_thing", thingName="compat-thing"), [
        R("list-things", ["iot", "list-things"], "c.list_things()"),
        R("describe-thing", ["iot", "describe-thing", "--thing-name", "compat-thing"], "c.describe_thing(thingName='compat-thing')"),
        M("create-thing", ["iot", "create-thing", "--thing-name", "compat-<<who>>-thing"], "c.create_thing(thingName='compat-<<who>>-thing')",
          verify="pick(c.describe_thing(thingName='compat-<<who>>-thing'), 'thingName', 'thingArn', 'attributes', 'version')"),
    ]),
    Service("wafv2", simple("wafv2", "create_ip_set", Name="compat-ipset", Scope="REGIONAL", IPAddressVersion="IPV4", Addresses=[]), [
        R("list-ip-sets", ["wafv2", "list-ip-sets", "--scope", "REGIONAL"], "c.list_ip_sets(Scope='REGIONAL')"),
        M("create-ip-set", ["wafv2", "create-ip-set", "--name", "compat-<<who>>-ipset", "--scope", "REGIONAL", "--ip-address-version", "IPV4",
                            "--addresses", "192.0.2.0/24"],
          "c.create_ip_set(Name='compat-<<who>>-ipset', Scope='REGIONAL', IPAddressVersion='IPV4', Addresses=['192.0.2.0/24'])",
          verify="[pick(c.get_ip_set(Name=s['Name'], Scope='REGIONAL', Id=s['Id'])['IPSet'], 'Name', 'Addresses', 'IPAddressVersion') for s in c.list_ip_sets(Scope='REGIONAL')['IPSets'] if s['Name'] == 'compat-<<who>>-ipset']"),
    ]),
    Service("xray", seed_xray, [
        R("batch-get-traces", ["xray", "batch-get-traces", "--trace-ids", trace_id(1)], f"c.batch_get_traces(TraceIds=['{trace_id(1)}'])"),
        R("get-trace-summaries", ["xray", "get-trace-summaries", "--start-time", str(NOW_S - 3600), "--end-time", str(NOW_S + 3600)],
          f"c.get_trace_summaries(StartTime={NOW_S - 3600}, EndTime={NOW_S + 3600})"),
        M("put-trace-segments", ["xray", "put-trace-segments", "--trace-segment-documents", "<<segment_<<who>>>>"],
          "c.put_trace_segments(TraceSegmentDocuments=[<<segment_<<who>>_py>>])",
          verify="[[json.loads(s['Document'])['name'] for s in t['Segments']] for t in c.batch_get_traces(TraceIds=['<<trace_<<who>>>>'])['Traces']]"),
    ]),
    Service("timestream-write", simple("timestream-write", "create_database", DatabaseName="compat_ts"), [
        R("list-databases", ["timestream-write", "list-databases"], "c.list_databases()"),
        R("describe-database", ["timestream-write", "describe-database", "--database-name", "compat_ts"], "c.describe_database(DatabaseName='compat_ts')"),
        M("create-database", ["timestream-write", "create-database", "--database-name", "compat_<<who>>_ts"], "c.create_database(DatabaseName='compat_<<who>>_ts')",
          verify="pick(c.describe_database(DatabaseName='compat_<<who>>_ts')['Database'], 'DatabaseName', 'Arn', 'TableCount')"),
    ]),
    Service("ds", None, [
        R("describe-directories", ["ds", "describe-directories"], "c.describe_directories()"),
        M("create-directory", ["ds", "create-directory", "--name", "<<who>>.compat.example", "--password", "Passw0rd!23", "--size", "Small",
                               "--vpc-settings", "VpcId=<<vpc_id>>,SubnetIds=<<subnet1>>,<<subnet2>>"],
          "c.create_directory(Name='<<who>>.compat.example', Password='Passw0rd!23', Size='Small', VpcSettings={'VpcId': '<<vpc_id>>', 'SubnetIds': ['<<subnet1>>', '<<subnet2>>']})",
          verify="[pick(d, 'Name', 'Size', 'Type', 'Stage', 'VpcSettings.VpcId') for d in c.describe_directories()['DirectoryDescriptions'] if d['Name'] == '<<who>>.compat.example']"),
    ]),
    Service("glacier", simple("glacier", "create_vault", vaultName="compat-vault"), [
        R("list-vaults", ["glacier", "list-vaults", "--account-id", "-"], "c.list_vaults()"),
        R("describe-vault", ["glacier", "describe-vault", "--account-id", "-", "--vault-name", "compat-vault"], "c.describe_vault(vaultName='compat-vault')"),
        M("create-vault", ["glacier", "create-vault", "--account-id", "-", "--vault-name", "compat-<<who>>-vault"], "c.create_vault(vaultName='compat-<<who>>-vault')",
          verify="pick(c.describe_vault(vaultName='compat-<<who>>-vault'), 'VaultName', 'VaultARN', 'NumberOfArchives', 'SizeInBytes')"),
    ]),
    Service("cloudtrail", simple("cloudtrail", "create_trail", Name="compat-trail", S3BucketName=SHARED_BUCKET), [
        R("describe-trails", ["cloudtrail", "describe-trails"], "c.describe_trails()"),
        R("get-trail-status", ["cloudtrail", "get-trail-status", "--name", "compat-trail"], "c.get_trail_status(Name='compat-trail')"),
        M("create-trail", ["cloudtrail", "create-trail", "--name", "compat-<<who>>-trail", "--s3-bucket-name", SHARED_BUCKET],
          f"c.create_trail(Name='compat-<<who>>-trail', S3BucketName='{SHARED_BUCKET}')",
          verify="c.get_trail(Name='compat-<<who>>-trail')['Trail']"),
    ]),
    Service("ram", simple("ram", "create_resource_share", name="compat-share"), [
        R("get-resource-shares", ["ram", "get-resource-shares", "--resource-owner", "SELF"], "c.get_resource_shares(resourceOwner='SELF')"),
        M("create-resource-share", ["ram", "create-resource-share", "--name", "compat-<<who>>-share"], "c.create_resource_share(name='compat-<<who>>-share')",
          verify="[pick(s, 'name', 'status', 'allowExternalPrincipals', 'owningAccountId') for s in c.get_resource_shares(resourceOwner='SELF', name='compat-<<who>>-share')['resourceShares']]"),
    ]),
]

# Seeds that need the common refs (the default VPC's subnets).
SEEDS_WITH_REFS = {"eks": seed_eks, "ds": seed_ds}
REDUCED = ["sts", "iam", "s3", "ec2", "sqs", "sns", "dynamodb", "logs", "cloudformation", "kms", "ssm", "secretsmanager"]


def static_refs():
    """Refs that are the same on every server (computed, not seeded)."""
    refs = {}
    for n, who in enumerate(CLIENTS, start=2):
        refs[f"segment_{who}"] = segment(n)
        refs[f"segment_{who}_py"] = repr(segment(n))
        refs[f"trace_{who}"] = trace_id(n)
    return refs


# ---------------------------------------------------------------------------------------
# The driver: runs a list of cases with one client and writes each result, on the host
# (direct, --endpoint-url) or inside the sandbox (no endpoint: the sandbox points every SDK
# at the broker).
# ---------------------------------------------------------------------------------------


def fill(value, variables, keep_missing=False):
    """Replace <<name>> placeholders, innermost first (<<q_compat-send-<<who>>>> works)."""
    if isinstance(value, list):
        return [fill(v, variables, keep_missing) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, variables, keep_missing) for k, v in value.items()}
    if not isinstance(value, str):
        return value
    pattern = re.compile(r"<<([^<>]+)>>")
    while True:
        def replace(m):
            name = m.group(1)
            if name in variables:
                return str(variables[name])
            if keep_missing:
                return "\x00" + name + "\x01"   # parked; restored below
            raise KeyError(f"no value for placeholder <<{name}>>")
        new = pattern.sub(replace, value)
        if new == value:
            break
        value = new
    return value.replace("\x00", "<<").replace("\x01", ">>")


def write_case_files(directory, files):
    for rel, spec in files.items():
        path = os.path.join(directory, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if "text" in spec:
            data = spec["text"].encode()
        elif "b64" in spec:
            data = base64.b64decode(spec["b64"])
        else:
            block = hashlib.sha256(spec["pattern"].encode()).digest() * 32   # 1 KiB, deterministic
            data = (block * (spec["size"] // len(block) + 1))[:spec["size"]]
        with open(path, "wb") as f:
            f.write(data)


def snapshot_files(directory, exclude):
    """A directory's files (relative path → text, or size and digest when binary or large)."""
    tree = {}
    for root, _dirs, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, directory)
            if rel in exclude:
                continue
            data = read_file(path)
            try:
                tree[rel] = data.decode() if len(data) < 4096 else {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            except UnicodeDecodeError:
                tree[rel] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return tree


def unique(items):
    return list(dict.fromkeys(items))


class Driver:
    def __init__(self, spec):
        self.spec = spec
        self.endpoint = spec.get("endpoint")      # None inside the sandbox
        self.clients = {}

    def client(self, name, **kw):
        import boto3
        if kw:
            return boto3.client(name, region_name=REGION, endpoint_url=self.endpoint, **kw)
        if name not in self.clients:
            self.clients[name] = boto3.client(name, region_name=REGION, endpoint_url=self.endpoint)
        return self.clients[name]

    def run_cli(self, argv, directory, out, files):
        command = [self.spec["aws"], "--output", "json"] + (["--endpoint-url", self.endpoint] if self.endpoint else []) + argv
        started = time.time()
        try:
            p = subprocess.run(command, cwd=directory, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=CASE_TIMEOUT)
            rc, stdout, stderr = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired as e:
            rc, stdout, stderr = -1, e.stdout or "", f"timed out after {CASE_TIMEOUT} s"
            stdout = stdout.decode() if isinstance(stdout, bytes) else stdout
        r = {"rc": rc, "stdout": stdout[-20000:], "stderr": stderr[-6000:], "seconds": round(time.time() - started, 2),
             "argv": argv, "proposals": unique(PROPOSAL_RE.findall(stderr + stdout))}
        codes = ERROR_CODE_RE.findall(stderr)
        if codes:
            r["code"] = codes[0]
        r["ok"] = rc == 0
        if rc == 0:
            r["result"] = self.cli_result(stdout, directory, out, files)
        return r

    @staticmethod
    def cli_result(stdout, directory, out, files):
        if out == "json":
            try:
                return json.loads(stdout) if stdout.strip() else None
            except ValueError:       # s3 transfers and deploy print progress lines, not JSON
                return {"text": stdout.splitlines()}
        if out == "text":
            return stdout.splitlines()
        if out == "url":
            return get_url(stdout.strip())
        if out.startswith("files:"):
            return snapshot_files(os.path.join(directory, out[6:]), set(files))
        raise ValueError(out)

    def run_boto3(self, code, directory, service_client):
        namespace = {"c": self.client(service_client), "client": self.client, "json": json, "os": os, "io": io,
                     "pick": pick, "get_url": get_url, "read_file": read_file}
        started, cwd = time.time(), os.getcwd()
        r = {"code_text": code}
        os.chdir(directory)
        try:
            r["result"] = jsonable(run_snippet(code, namespace))
            r["ok"] = True
        except Exception as error:   # ClientError, S3UploadFailedError (wraps one), anything
            message = str(error)
            r["ok"] = False
            r["error"] = {"type": type(error).__name__, "message": message[:4000]}
            response = getattr(error, "response", None)
            code_found = (response or {}).get("Error", {}).get("Code") or next(iter(ERROR_CODE_RE.findall(message)), None)
            if code_found:
                r["code"] = code_found
            r["proposals"] = unique(PROPOSAL_RE.findall(message))
        finally:
            os.chdir(cwd)
        r.setdefault("proposals", [])
        r["seconds"] = round(time.time() - started, 2)
        return r

    def wait_for_approval(self, proposal):
        """Inside the sandbox: ask the host to approve (a file in the workspace), then block in
        `airlock wait` as an agent would; its JSON carries the upstream's answer."""
        request = os.path.join(self.spec["approve_dir"], proposal + ".req")
        with open(request, "w") as f:
            f.write(proposal)
        p = subprocess.run(["airlock", "wait", proposal, "--json", "--timeout", "300"], capture_output=True, text=True, timeout=330)
        try:
            waited = json.loads(p.stdout)
        except ValueError:
            waited = {}
        return {"rc": p.returncode, "state": waited.get("state"), "output": (waited.get("result") or {}).get("output", ""),
                "stderr": p.stderr[-2000:]}

    def run_step(self, case, step, directory, captured):
        if case["client"] == "cli":
            return self.run_cli(fill(step["argv"], captured), directory, case.get("out", "json"), case.get("files", {}))
        return self.run_boto3(fill(step["code"], captured), directory, case["boto3_client"])

    def run_case(self, case):
        directory = os.path.join(self.spec["base"], case["id"].replace("/", "_"))
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory)
        write_case_files(directory, case.get("files", {}))
        captured, pre = {}, []
        for step in case.get("pre", []):
            r = self.run_step(dict(case, out="json"), step, directory, captured)
            text = r.get("stdout") or json.dumps(r.get("result"))
            if r["proposals"] and not self.endpoint:
                r["waited"] = self.wait_for_approval(r["proposals"][0])
                text = r["waited"]["output"]
            pre.append(r)
            for name, regex in step.get("capture", {}).items():
                m = re.search(regex, text or "")
                if not m:
                    return {"ok": False, "pre": pre, "proposals": [], "setup_failed": f"step {len(pre)}: nothing matched {regex!r} in {text[:200]!r}"}
                captured["$" + name] = m.group(1)
        main = case.get("argv") if case["client"] == "cli" else case.get("code")
        r = self.run_step(case, {"argv": main, "code": main}, directory, captured)
        r["pre"] = pre
        return r

    def meta(self):
        info = {"python": sys.version.split()[0], "executable": sys.executable}
        try:
            import boto3
            import botocore
            info.update(boto3=boto3.__version__, botocore=botocore.__version__)
        except ImportError as error:
            info["boto3_error"] = str(error)
        try:
            p = subprocess.run([self.spec["aws"], "--version"], capture_output=True, text=True, timeout=60)
            info["aws_cli"] = (p.stdout + p.stderr).strip()
        except OSError as error:
            info["aws_cli"] = f"not runnable: {error}"
        info["aws_resolved"] = shutil.which(self.spec["aws"]) or self.spec["aws"]
        return info


def driver_main(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    driver = Driver(spec)
    results = {"meta": driver.meta(), "cases": {}}
    os.makedirs(spec["base"], exist_ok=True)
    for case in spec["cases"]:
        print(f"compat: {case['id']}", flush=True)
        try:
            results["cases"][case["id"]] = driver.run_case(case)
        except Exception as error:   # a broken case must not stop the others
            results["cases"][case["id"]] = {"ok": False, "proposals": [], "driver_error": f"{type(error).__name__}: {error}"}
        # Written after every case: a session that times out still leaves what it did.
        tmp = spec["out"] + ".tmp"
        with open(tmp, "w") as f:
            json.dump(results, f)
        os.replace(tmp, spec["out"])
    return 0


# ---------------------------------------------------------------------------------------
# Normalization and comparison.
# ---------------------------------------------------------------------------------------

DROP_KEYS = {"ResponseMetadata", "RequestId", "requestId", "RequestID"}
TIME_PATTERNS = [
    re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?"),
    re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT"),
]
# Ids moto generates: they differ between M1 and M2 (only normalized when comparing the two).
ID_PATTERNS = [
    (re.compile(r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<uuid>"),
    (re.compile(r"(:secret:[\w/+=.@-]+?)-[A-Za-z0-9]{6}\b"), r"\1-<rand>"),
    (re.compile(r"\b(?:AID|ARO|AKI|ASI|ANP|AGP|AIP|ANV|APK)A[A-Z0-9]{12,}\b"), "<uid>"),
    (re.compile(r"\b[a-z][a-z0-9]{0,3}-(?=[0-9a-z]*[0-9])[0-9a-z]{6,32}\b"), "<id>"),   # sg-…, vpc-…, fs-…, d-…, ns-…
    (re.compile(r"(?<![0-9A-Za-z])[0-9a-f]{12,}(?![0-9A-Za-z])"), "<hex>"),
    (re.compile(r"\b(?=[A-Z0-9]*[0-9])(?=[A-Z0-9]*[A-Z])[A-Z0-9]{12,32}\b"), "<ID>"),  # route53 zone ids
    (re.compile(r"(127\.0\.0\.1|localhost):\d+"), r"\1:<port>"),
]


# Content digests: equal digests are the point, never treat them as generated ids.
KEEP_KEYS = {"sha256", "CodeSha256", "ETag"}


def normalize(value, ids=False):
    if isinstance(value, dict):
        return {k: normalize(v, ids and k not in KEEP_KEYS) for k, v in value.items() if k not in DROP_KEYS}
    if isinstance(value, list):
        items = [normalize(v, ids) for v in value]
        # Between two servers, list order may follow random ids: compare as multisets.
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True)) if ids else items
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        # Epoch seconds or milliseconds (creation times, ingestion times).
        return "<epoch>" if 1e9 <= value < 2.5e9 or 1e12 <= value < 2.5e12 else value
    if isinstance(value, str):
        for pattern in TIME_PATTERNS:
            value = pattern.sub("<time>", value)
        if ids:
            for pattern, replacement in ID_PATTERNS:
                value = pattern.sub(replacement, value)
        return value
    return value


def flatten(value, path="", out=None):
    out = {} if out is None else out
    if isinstance(value, dict):
        out[path + "{}"] = sorted(value)
        for k in sorted(value):
            flatten(value[k], f"{path}.{k}", out)
    elif isinstance(value, list):
        out[path + "#len"] = len(value)
        for i, v in enumerate(value):
            flatten(v, f"{path}[{i}]", out)
    else:
        out[path or "."] = value
    return out


def volatile_paths(a, b):
    """Paths whose values differ between two identical calls: ignored in the comparison."""
    fa, fb = flatten(a), flatten(b)
    return {p for p in set(fa) | set(fb) if fa.get(p, "<missing>") != fb.get(p, "<missing>")}


def ignored(path, ignore):
    """A volatile path, or inside a list or dict whose shape is volatile."""
    if path in ignore:
        return True
    for v in ignore:
        if v.endswith("#len") and path.startswith(v[:-4] + "["):
            return True
        if v.endswith("{}") and path.startswith(v[:-2] + "."):
            return True
    return False


def first_difference(expected, actual, ignore):
    fe, fa = flatten(expected), flatten(actual)
    for path in sorted(set(fe) | set(fa)):
        if ignored(path, ignore):
            continue
        left, right = fe.get(path, "<missing>"), fa.get(path, "<missing>")
        if left != right:
            return f"{path or '.'}: direct={short(left)} airlock={short(right)}"
    return None


def short(value, limit=120):
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


# ---------------------------------------------------------------------------------------
# The host side: moto servers, seeding, sessions, approvals, verification.
# ---------------------------------------------------------------------------------------

STARTED = []   # processes to stop at exit


def stop_started():
    for p in STARTED:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except OSError:
                pass
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moto:
    def __init__(self, binary, name, workdir):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = os.path.join(workdir, f"moto-{name}.log")
        self.process = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(self.port)], stdout=open(self.log, "w"),
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        STARTED.append(self.process)
        for _ in range(300):
            if self.process.poll() is not None:
                raise SystemExit(f"compat: moto_server exited ({self.process.returncode}); see {self.log}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"compat: moto_server {name} did not listen on {self.port}; see {self.log}")

    def client_factory(self):
        import boto3
        cache = {}

        def k(name, **kw):
            # moto's keys, explicitly: the orchestrator never reads the user's AWS configuration.
            kw.update(region_name=REGION, endpoint_url=self.url, aws_access_key_id="testing", aws_secret_access_key="testing")
            if len(kw) > 4:
                return boto3.client(name, **kw)
            if name not in cache:
                cache[name] = boto3.client(name, **kw)
            return cache[name]
        return k


def seed(moto, services):
    """Seeds one server; returns its refs. A failing seed disables its service (reported)."""
    k = moto.client_factory()
    refs = dict(static_refs())
    refs.update(seed_common(k))
    broken = {}
    for service in services:
        try:
            fn = SEEDS_WITH_REFS.get(service.name)
            got = fn(k, refs) if fn else (service.seed(k) if service.seed else None)
            refs.update(got or {})
        except Exception as error:
            broken[service.name] = f"seed failed on {moto.name}: {type(error).__name__}: {error}"[:500]
    return refs, broken


class Case:
    def __init__(self, service, op, client):
        self.service, self.op, self.client = service, op, client
        self.id = f"{service.name}/{client}/{op.name}"
        self.kind = op.kind
        self.shim = op.shim and client == "cli"
        self.outcome = None       # "pass" or "fail"
        self.reason = None
        self.detail = {}

    def spec(self, refs):
        """The case as the driver runs it, placeholders filled for one server."""
        variables = dict(refs, who=self.client)
        spec = {"id": self.id, "client": self.client, "kind": self.kind, "boto3_client": self.op.client or self.service.client,
                "out": self.op.out if self.client == "cli" else "json", "files": fill(self.op.files, variables)}
        if self.client == "cli":
            spec["argv"] = fill(self.op.cli, variables, keep_missing=True)
            spec["pre"] = fill(self.op.pre_cli, variables, keep_missing=True)
        else:
            spec["code"] = fill(self.op.boto3, variables, keep_missing=True)
            spec["pre"] = fill(self.op.pre_boto3, variables, keep_missing=True)
        return spec


def build_cases(services):
    cases = []
    for service in services:
        for op in service.ops:
            for client in CLIENTS:
                if (op.cli if client == "cli" else op.boto3) is not None:
                    cases.append(Case(service, op, client))
    return cases


class Runner:
    def __init__(self, args):
        self.args = args
        self.workdir = args.workdir
        self.state = os.path.join(self.workdir, "state")
        self.profile = os.path.join(self.workdir, "profile.yaml")
        self.approved = {}     # proposal id → approval record (approved during or after a session)
        self.sessions = []
        self.timings = {}

    # -- environments ----------------------------------------------------------------

    def clean_environment(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=REGION,
                   AWS_EC2_METADATA_DISABLED="true", AWS_PAGER="")
        return env

    def host_environment(self):
        """Direct calls: only the testing keys, no config file of the user's."""
        env = self.clean_environment()
        env.update(AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
        return env

    def launcher_environment(self):
        """`airlock run` and `airlock approve`: the broker's "real" credentials (moto's), and a
        PATH on which the aws shim finds the real CLI."""
        env = self.clean_environment()
        dirs = unique([os.path.dirname(os.path.abspath(self.args.aws)), os.path.dirname(os.path.abspath(self.args.python))])
        env["PATH"] = ":".join(dirs + [env.get("PATH", "/usr/bin:/bin")])
        if not os.environ.get("AIRLOCK_PROFILE_PATH") and os.path.isdir(os.path.join(CHECKOUT, "profiles")):
            # A copied binary (/tmp/compat-airlock) does not find the checkout's profiles itself.
            env["AIRLOCK_PROFILE_PATH"] = os.path.join(CHECKOUT, "profiles")
        return env

    def write_profile(self):
        readonly, path = [], []
        for tool in (self.args.aws, self.args.python):
            bindir = os.path.dirname(os.path.abspath(tool))
            root = os.path.dirname(bindir)
            mount = root if os.path.exists(os.path.join(root, "pyvenv.cfg")) else bindir
            if not mount.startswith(("/usr/", "/etc/", "/opt/")) and mount not in ("/usr", "/bin"):
                readonly.append(mount)
            path.append(bindir)
        readonly, path = unique(readonly), unique(path)
        with open(self.profile, "w") as f:
            f.write("# Written by scripts/compat.py: the clients under test, read-only, first on PATH.\n")
            f.write(f"filesystem: {{readonly: [{', '.join(readonly)}]}}\n")
            f.write(f"environment: {{path: [{', '.join(path)}]}}\n")

    # -- running the driver --------------------------------------------------------------

    def driver_spec(self, cases, refs, base, out, endpoint, approve_dir=None, aws=None):
        return {"cases": [c.spec(refs) for c in cases], "base": base, "out": out, "endpoint": endpoint,
                "aws": aws or os.path.abspath(self.args.aws), "approve_dir": approve_dir}

    def run_direct(self, cases, refs, moto, tag):
        """The driver on the host, straight to a moto server."""
        if not cases:
            return {}
        base = os.path.join(self.workdir, "direct", tag)
        shutil.rmtree(base, ignore_errors=True)
        os.makedirs(base)
        spec_path, out = os.path.join(base, "spec.json"), os.path.join(base, "results.json")
        with open(spec_path, "w") as f:
            json.dump(self.driver_spec(cases, refs, os.path.join(base, "cases"), out, moto.url), f)
        started = time.time()
        p = subprocess.run([self.args.python, os.path.abspath(__file__), "--driver", spec_path], env=self.host_environment(),
                           capture_output=True, text=True, timeout=self.args.session_timeout, cwd=base)
        self.timings[f"direct {tag}"] = round(time.time() - started, 1)
        if not os.path.exists(out):
            raise SystemExit(f"compat: the driver failed on the host ({p.returncode}):\n{p.stderr[-3000:]}")
        with open(out) as f:
            results = json.load(f)
        self.meta_direct = results["meta"]
        return results["cases"]

    def run_session(self, cases, refs, moto, tag):
        """One `airlock run` with the driver inside; proposals a case waits on (a receipt handle
        before a delete) are approved from here while the session runs."""
        if not cases:
            return {}
        workspace = os.path.join(self.workdir, "ws-" + tag)
        shutil.rmtree(workspace, ignore_errors=True)
        approve_dir = os.path.join(workspace, ".compat-approve")
        os.makedirs(approve_dir)
        shutil.copy(os.path.abspath(__file__), os.path.join(workspace, "compat_driver.py"))
        spec_path, out = os.path.join(workspace, "spec.json"), os.path.join(workspace, "results.json")
        # Inside: `aws` by name, so the shim at /run/airlock/bin/aws (first on PATH) is what runs.
        with open(spec_path, "w") as f:
            json.dump(self.driver_spec(cases, refs, os.path.join(workspace, "cases"), out, None, approve_dir, aws="aws"), f)
        command = [self.args.airlock, "run", "--workspace", workspace, "--state-dir", self.state, "--aws-endpoint", moto.url,
                   "--profile", self.profile, "--", self.args.python, os.path.join(workspace, "compat_driver.py"), "--driver", spec_path]
        log_path = os.path.join(self.workdir, f"session-{tag}.log")
        started = time.time()
        with open(log_path, "w") as log:
            p = subprocess.Popen(command, cwd=workspace, env=self.launcher_environment(), stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            STARTED.append(p)
            timed_out = False
            while p.poll() is None:
                self.approve_requests(approve_dir)
                if time.time() - started > self.args.session_timeout:
                    timed_out = True
                    os.killpg(p.pid, signal.SIGTERM)
                    try:
                        p.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        os.killpg(p.pid, signal.SIGKILL)
                        p.wait()
                    break
                time.sleep(0.3)
        seconds = round(time.time() - started, 1)
        self.timings[f"airlock {tag}"] = seconds
        with open(log_path) as f:
            log_text = f.read()
        self.sessions.append({"tag": tag, "rc": p.returncode, "seconds": seconds, "timed_out": timed_out, "log": log_path,
                              "tail": log_text[-3000:]})
        if not os.path.exists(out):
            print(f"compat: `airlock run` ({tag}) failed (exit {p.returncode}) before the driver wrote anything:", file=sys.stderr)
            print(log_text[-4000:], file=sys.stderr)
            print(f"compat: command: {' '.join(command)}", file=sys.stderr)
            raise SystemExit(2)
        if timed_out:
            print(f"compat: session {tag} timed out after {self.args.session_timeout} s; results so far are used", file=sys.stderr)
        with open(out) as f:
            results = json.load(f)
        self.meta_sandbox = results["meta"]
        return results["cases"]

    def approve_requests(self, approve_dir):
        for name in sorted(os.listdir(approve_dir)):
            if name.endswith(".req") and name[:-4] not in self.approved:
                self.approve(name[:-4])

    def approve(self, proposal):
        if proposal in self.approved:
            return self.approved[proposal]
        started = time.time()
        try:
            p = subprocess.run([self.args.airlock, "approve", proposal, "--state-dir", self.state], env=self.launcher_environment(),
                               capture_output=True, text=True, timeout=600, cwd=self.workdir)
            record = {"id": proposal, "rc": p.returncode, "output": (p.stdout + p.stderr)[-3000:]}
        except subprocess.TimeoutExpired:
            record = {"id": proposal, "rc": -1, "output": "airlock approve timed out after 600 s"}
        record["seconds"] = round(time.time() - started, 1)
        self.approved[proposal] = record
        return record

    # -- the phases ---------------------------------------------------------------------

    def reads(self, cases, m1, refs1):
        for client in CLIENTS:
            mine = [c for c in cases if c.client == client and c.kind == "read"]
            # The two direct runs (which find the volatile fields) at once; then Airlock's.
            first, second = parallel(lambda: self.run_direct(mine, refs1, m1, f"read-{client}-1"),
                                     lambda: self.run_direct(mine, refs1, m1, f"read-{client}-2"))
            if self.args.direct_only:   # checking the table: a third direct run stands in for Airlock
                inside = self.run_direct(mine, refs1, m1, f"read-{client}-3")
            else:
                inside = self.run_session(mine, refs1, m1, f"read-{client}")
            for case in mine:
                judge_read(case, first.get(case.id), second.get(case.id), inside.get(case.id))

    def mutations(self, cases, m1, m2, refs1, refs2):
        mine = {client: [c for c in cases if c.client == client and c.kind == "mutation"] for client in CLIENTS}
        # M1 (direct) and M2 (through Airlock) are independent servers: both at once.
        def on_m1():
            return {client: self.run_direct(mine[client], refs1, m1, f"mutation-{client}") for client in CLIENTS}

        def on_m2():
            if self.args.direct_only:       # checking the table: M2 gets the same calls directly
                return {client: self.run_direct(mine[client], refs2, m2, f"mutation-{client}-m2") for client in CLIENTS}
            return {client: self.run_session(mine[client], refs2, m2, f"mutation-{client}") for client in CLIENTS}
        direct, inside = parallel(on_m1, on_m2)
        started = time.time()
        for client in CLIENTS:
            for case in mine[client]:
                r = inside[client].get(case.id) or {}
                case.detail["approvals"] = [self.approve(pid) for pid in r.get("proposals", [])]
                case.detail["pre_approvals"] = [self.approved.get(pid) for step in r.get("pre", []) for pid in step.get("proposals", [])]
        self.timings["approvals"] = round(time.time() - started, 1)
        started = time.time()
        k1, k2 = m1.client_factory(), m2.client_factory()
        for client in CLIENTS:
            for case in mine[client]:
                judge_mutation(case, direct[client].get(case.id), inside[client].get(case.id), verification(case, k1, k2, refs1, refs2),
                               gated=not self.args.direct_only)
        self.timings["verification"] = round(time.time() - started, 1)

    def leftover_proposals(self):
        p = subprocess.run([self.args.airlock, "proposals", "--json", "--state-dir", self.state], env=self.launcher_environment(),
                           capture_output=True, text=True, timeout=60)
        try:
            return [{"id": x["id"], "summary": x.get("summary"), "session": x.get("session")} for x in json.loads(p.stdout).get("proposals", [])]
        except ValueError:
            return [{"error": (p.stdout + p.stderr)[-500:]}]


def parallel(*functions):
    """Run functions in threads; their results in order (the first exception is raised)."""
    results, errors = [None] * len(functions), []

    def run(i, fn):
        try:
            results[i] = fn()
        except BaseException as error:   # SystemExit from a failed session included
            errors.append(error)
    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(functions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def verification(case, k1, k2, refs1, refs2):
    """The verify snippet on M1 twice (to find volatile fields) and on M2."""
    if case.op.verify is None:
        return None
    out = {}
    for name, k, refs in (("m1", k1, refs1), ("m1_again", k1, refs1), ("m2", k2, refs2)):
        code = fill(case.op.verify, dict(refs, who=case.client))
        namespace = {"c": k(case.op.client or case.service.client), "client": k, "json": json, "pick": pick,
                     "s3_tree": s3_tree, "read_file": read_file}
        try:
            out[name] = {"ok": True, "result": jsonable(run_snippet(code, namespace))}
        except Exception as error:
            out[name] = {"ok": False, "error": f"{type(error).__name__}: {error}"[:500]}
    return out


# -- judging -------------------------------------------------------------------------------

def failure_text(r):
    """One line saying why a call failed."""
    if r is None:
        return "no result (the session ended before this case)"
    if r.get("driver_error"):
        return "driver error: " + r["driver_error"]
    if r.get("setup_failed"):
        return "setup failed: " + r["setup_failed"]
    if "error" in r:
        return f"{r['error']['type']}: {r['error']['message'].splitlines()[0][:300] if r['error']['message'] else ''}"
    lines = [line for line in (r.get("stderr") or "").splitlines() if line.strip()]
    return f"exit {r.get('rc')}: {lines[-1][:300] if lines else '(no stderr)'}"


def comparable(r):
    return {"rc": r.get("rc"), "result": r.get("result")} if "rc" in r else {"result": r.get("result")}


def judge_read(case, first, second, inside):
    case.detail.update(direct=first, direct_again=second, airlock=inside)
    if not first or not first.get("ok"):
        return fail(case, "direct call failed (a test-case problem or moto): " + failure_text(first))
    if inside is None or not inside.get("ok"):
        if inside and inside.get("proposals"):
            return fail(case, f"gated inside Airlock ({inside.get('code')}, proposal {inside['proposals'][0]}) but is a read")
        return fail(case, "failed inside Airlock: " + failure_text(inside))
    second = second if second and second.get("ok") else first
    a, b, c = normalize(comparable(first)), normalize(comparable(second)), normalize(comparable(inside))
    ignore = volatile_paths(a, b)
    case.detail["ignored_paths"] = sorted(ignore)
    difference = first_difference(a, c, ignore)
    if difference:
        return fail(case, "differs: " + difference)
    case.outcome = "pass"


def judge_mutation(case, direct, inside, verified, gated=True):
    """Three checks, all reported: gated as expected, approvals succeeded, same effect."""
    case.detail.update(direct=direct, airlock=inside, verification=verified)
    if not direct or not direct.get("ok"):
        return fail(case, "direct call failed (a test-case problem or moto): " + failure_text(direct))
    if inside is None:
        return fail(case, "no result inside Airlock (the session ended before this case)")
    if inside.get("setup_failed") or inside.get("driver_error"):
        return fail(case, failure_text(inside))
    problems = [gate_problem(case, inside) if gated else (None if inside.get("ok") else "direct call on M2 failed: " + failure_text(inside))]
    for approval in case.detail.get("approvals", []) + [a for a in case.detail.get("pre_approvals", []) if a]:
        if approval["rc"] != 0:
            lines = [line for line in approval["output"].splitlines() if line.strip()]
            problems.append(f"approve {approval['id']} failed (exit {approval['rc']}): {' | '.join(lines[:3])[:300]}")
    problems.append(effect_problem(verified))
    problems = [p for p in problems if p]
    if problems:
        return fail(case, "; ".join(problems))
    case.outcome = "pass"


def gate_problem(case, inside):
    proposals = inside.get("proposals", [])
    if case.shim:
        if inside.get("rc") != 75 or len(proposals) != 1:
            return (f"expected the aws shim's exit 75 with one proposal; got exit {inside.get('rc')}, "
                    f"{len(proposals)} proposal(s){', error ' + inside['code'] if inside.get('code') else ''}")
    elif inside.get("ok"):
        return "NOT GATED: the mutation succeeded inside Airlock without a proposal"
    elif inside.get("code") != "AirlockProposalPending" or len(proposals) != 1:
        return f"expected AirlockProposalPending with one proposal; got {inside.get('code')}, {len(proposals)} proposal(s): " + failure_text(inside)
    return None


def effect_problem(verified):
    if verified is None:
        return None      # nothing observable (a sensitive read): gated and approved is the test
    for name in ("m1", "m1_again", "m2"):
        if not verified[name]["ok"]:
            where = "direct (M1)" if name != "m2" else "approved (M2)"
            return f"verification read on the {where} server failed: {verified[name]['error']}"
    a, b, c = (normalize(verified[n]["result"], ids=True) for n in ("m1", "m1_again", "m2"))
    difference = first_difference(a, c, volatile_paths(a, b))
    if difference:
        return "effect differs: " + difference.replace("direct=", "direct(M1)=").replace("airlock=", "approved(M2)=")
    return None


def fail(case, reason):
    case.outcome, case.reason = "fail", reason


# -- reporting -----------------------------------------------------------------------------

def matrix(cases, services):
    lines, totals = [], {}
    width = max(len(s.name) for s in services)
    for service in services:
        cells = []
        for kind in ("read", "mutation"):
            parts = []
            for client in CLIENTS:
                mine = [c for c in cases if c.service is service and c.kind == kind and c.client == client]
                passed = sum(c.outcome == "pass" for c in mine)
                t = totals.setdefault((kind, client), [0, 0])
                t[0] += passed
                t[1] += len(mine)
                parts.append(f"{client} {passed}/{len(mine)}".ljust(11))
            cells.append(f"{kind} {' '.join(parts)}")
        lines.append(f"{service.name.ljust(width)}  {'  '.join(cells)}")
    total = "  ".join(f"{kind} " + " ".join(f"{client} {totals[(kind, client)][0]}/{totals[(kind, client)][1]}".ljust(11) for client in CLIENTS)
                      for kind in ("read", "mutation"))
    lines.append(f"{'TOTAL'.ljust(width)}  {total}")
    return lines


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Client compatibility matrix for Airlock's AWS gate (docs/compatibility.md).")
    parser.add_argument("--airlock", required=True, help="the airlock binary")
    parser.add_argument("--aws", required=True, help="the aws CLI under test")
    parser.add_argument("--python", required=True, help="a Python with boto3 (runs the driver, on the host and inside)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--services", help="comma-separated services (default: all)")
    group.add_argument("--reduced", action="store_true", help="the 12 most used services")
    parser.add_argument("--json", help="write every case, outcome and reason here")
    parser.add_argument("--workdir", help="workspaces, state, logs (default: a new /tmp/airlock-compat-*)")
    parser.add_argument("--label", default="", help="a label for the report (e.g. the commit)")
    parser.add_argument("--moto-server", default=os.path.join(CHECKOUT, ".venv/bin/moto_server"))
    parser.add_argument("--session-timeout", type=int, default=900, help="seconds per airlock run session (default 900)")
    parser.add_argument("--direct-only", action="store_true",
                        help="check the case table against moto alone (no Airlock): seeds, direct calls, verifications")
    return parser.parse_args(argv)


def select_services(args):
    by_name = {s.name: s for s in SERVICES}
    if args.reduced:
        names = REDUCED
    elif args.services:
        names = [n.strip() for n in args.services.split(",") if n.strip()]
    else:
        names = [s.name for s in SERVICES]
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise SystemExit(f"compat: unknown service(s): {', '.join(unknown)}; known: {', '.join(by_name)}")
    return [by_name[n] for n in names]


def check_airlock(args, env):
    try:
        p = subprocess.run([args.airlock, "--help"], capture_output=True, text=True, timeout=60, env=env)
    except OSError as error:
        raise SystemExit(f"compat: cannot run {args.airlock}: {error}")
    if p.returncode != 0:
        raise SystemExit(f"compat: {args.airlock} --help failed ({p.returncode}):\n{p.stderr[-2000:]}")


def moto_version(binary):
    python = os.path.join(os.path.dirname(binary), "python3")
    p = subprocess.run([python, "-c", "import moto; print(moto.__version__)"], capture_output=True, text=True, timeout=60)
    return p.stdout.strip() or "unknown"


def main(argv):
    if argv[:1] == ["--driver"]:
        return driver_main(argv[1])
    args = parse_args(argv)
    args.workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="airlock-compat-"))
    os.makedirs(args.workdir, exist_ok=True)
    shutil.rmtree(os.path.join(args.workdir, "state"), ignore_errors=True)
    services = select_services(args)
    atexit.register(stop_started)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.time()
    runner = Runner(args)
    check_airlock(args, runner.launcher_environment())
    runner.write_profile()
    print(f"compat: {len(services)} services; workdir {args.workdir}", flush=True)

    m1, m2 = Moto(args.moto_server, "M1", args.workdir), Moto(args.moto_server, "M2", args.workdir)
    refs1, broken1 = seed(m1, services)
    refs2, broken2 = seed(m2, services)
    broken = {**broken2, **broken1}
    cases = build_cases(services)
    for case in cases:
        if case.service.name in broken:
            fail(case, broken[case.service.name])
    runnable = [c for c in cases if c.outcome is None]
    print(f"compat: {len(cases)} cases; moto M1 {m1.url}, M2 {m2.url}", flush=True)

    phase = time.time()
    runner.reads(runnable, m1, refs1)
    runner.timings["reads (total)"] = round(time.time() - phase, 1)
    phase = time.time()
    runner.mutations(runnable, m1, m2, refs1, refs2)
    runner.timings["mutations (total)"] = round(time.time() - phase, 1)
    leftover = [] if args.direct_only else runner.leftover_proposals()
    runner.timings["total"] = round(time.time() - started, 1)

    report(args, services, cases, runner, leftover)
    return 0 if all(c.outcome == "pass" for c in cases) else 1


def report(args, services, cases, runner, leftover):
    sandbox = getattr(runner, "meta_sandbox", {})
    direct = getattr(runner, "meta_direct", {})
    versions = {"aws_cli": direct.get("aws_cli"), "boto3": direct.get("boto3"), "botocore": direct.get("botocore"),
                "moto": moto_version(args.moto_server), "python": direct.get("python"),
                "aws_in_sandbox": sandbox.get("aws_resolved"), "aws_cli_in_sandbox": sandbox.get("aws_cli")}
    print()
    print(f"Airlock client compatibility{' — ' + args.label if args.label else ''}")
    print(f"  {versions['aws_cli']}; boto3 {versions['boto3']}, botocore {versions['botocore']}; moto {versions['moto']}")
    print(f"  inside the sandbox `aws` is {versions['aws_in_sandbox']}")
    print()
    for line in matrix(cases, services):
        print(line)
    failures = [c for c in cases if c.outcome != "pass"]
    print()
    if failures:
        print(f"{len(failures)} failure(s):")
        for c in failures:
            print(f"  {c.id} [{c.kind}]: {c.reason}")
    else:
        print("no failures")
    pending = [p for p in leftover if p.get("id") and p["id"] not in runner.approved]
    if pending:
        print(f"\nproposals left pending (not approved by this run): {len(pending)}")
        for p in pending[:30]:
            print(f"  {p['id']} {p.get('summary')}")
    print("\ntimings (s): " + ", ".join(f"{k} {v}" for k, v in runner.timings.items()))
    print(f"workdir: {args.workdir} (broker logs: {runner.state}/sessions/*.log)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"label": args.label, "versions": versions, "sandbox_meta": sandbox, "direct_meta": direct,
                       "timings": runner.timings, "sessions": runner.sessions, "workdir": args.workdir,
                       "matrix": matrix(cases, services), "leftover_proposals": leftover,
                       "cases": [{"id": c.id, "service": c.service.name, "client": c.client, "kind": c.kind, "shim": c.shim,
                                  "outcome": c.outcome, "reason": c.reason, "detail": c.detail} for c in cases]}, f, indent=1, default=str)
        print(f"results: {args.json}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
