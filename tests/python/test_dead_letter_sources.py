"""The custom resource that makes the events queue the dead-letter queue's only source
(template.yaml's DeadLetterSourcesFunction, run by scripts/test.sh with unittest): its inline
code, taken from the template as deployed, against botocore's stubbed SQS and a stand-in for
Lambda's cfnresponse module. moto's SQS does not keep RedriveAllowPolicy, so the stub checks the
exact call instead."""

import json
import os
import pathlib
import sys
import types
import unittest

import boto3
from botocore.stub import Stubber
from cfnlint.decode import cfn_yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATE = cfn_yaml.load(str(ROOT / "template.yaml"))
CODE = TEMPLATE["Resources"]["DeadLetterSourcesFunction"]["Properties"]["Code"]["ZipFile"]
EVENTS_ARN = "arn:aws:sqs:us-east-1:123456789012:stack-EventsQueue-abc.fifo"
DLQ_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/stack-EventsDeadLetterQueue-def.fifo"


def load_handler(client, sent):
    """The template's handler, with boto3.client returning `client` and cfnresponse.send
    appending to `sent`."""
    cfnresponse = types.ModuleType("cfnresponse")
    cfnresponse.SUCCESS, cfnresponse.FAILED = "SUCCESS", "FAILED"
    cfnresponse.send = lambda event, context, status, data, physical, reason=None: sent.append(
        (status, physical, reason))
    sys.modules["cfnresponse"] = cfnresponse
    module = types.ModuleType("index")
    exec(compile(CODE, "index.py", "exec"), module.__dict__)
    module.boto3 = types.SimpleNamespace(client=lambda service: client)
    return module.handler


def event(request_type, properties=None):
    return {"RequestType": request_type, "ResourceProperties": properties or {}}


class DeadLetterSources(unittest.TestCase):
    def setUp(self):
        self.sqs = boto3.client("sqs", region_name="us-east-1", aws_access_key_id="x",
                                aws_secret_access_key="x")
        self.stub = Stubber(self.sqs)
        self.sent = []
        self.handler = load_handler(self.sqs, self.sent)
        # What the template's Environment gives it.
        os.environ["DEAD_LETTER_QUEUE_URL"], os.environ["SOURCE_QUEUE_ARN"] = DLQ_URL, EVENTS_ARN

    def tearDown(self):
        del os.environ["DEAD_LETTER_QUEUE_URL"], os.environ["SOURCE_QUEUE_ARN"]

    def test_create_and_update_name_the_events_queue_as_the_only_source(self):
        expected = {"QueueUrl": DLQ_URL, "Attributes": {"RedriveAllowPolicy": json.dumps(
            {"redrivePermission": "byQueue", "sourceQueueArns": [EVENTS_ARN]})}}
        for request_type in ("Create", "Update"):
            self.stub.add_response("set_queue_attributes", {}, expected)
        # Queues named in the invoking event are ignored: only the stack's are used.
        elsewhere = {"DeadLetterQueueUrl": "https://sqs.example/other", "SourceQueueArn": "arn:x"}
        with self.stub:
            self.handler(event("Create"), None)
            self.handler(event("Update", elsewhere), None)
        self.stub.assert_no_pending_responses()
        self.assertEqual(self.sent, [("SUCCESS", "dead-letter-sources", None)] * 2)

    def test_the_stack_points_it_at_its_own_queues_and_allows_it_that_one_call(self):
        resources = TEMPLATE["Resources"]
        self.assertEqual(resources["DeadLetterSources"]["Properties"], {
            "ServiceToken": {"Fn::GetAtt": ["DeadLetterSourcesFunction", "Arn"]},
            "DeadLetterQueueUrl": {"Ref": "EventsDeadLetterQueue"},
            "SourceQueueArn": {"Fn::GetAtt": ["EventsQueue", "Arn"]},
        })
        variables = resources["DeadLetterSourcesFunction"]["Properties"]["Environment"]["Variables"]
        self.assertEqual(variables, {
            "DEAD_LETTER_QUEUE_URL": {"Ref": "EventsDeadLetterQueue"},
            "SOURCE_QUEUE_ARN": {"Fn::GetAtt": ["EventsQueue", "Arn"]},
        })
        (policy,) = resources["DeadLetterSourcesRole"]["Properties"]["Policies"]
        self.assertEqual(policy["PolicyDocument"]["Statement"], [{
            "Effect": "Allow", "Action": "sqs:SetQueueAttributes",
            "Resource": {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}}])
        self.assertNotIn("RedriveAllowPolicy", resources["EventsDeadLetterQueue"]["Properties"])

    def test_delete_calls_nothing_and_succeeds(self):
        with self.stub:
            self.handler(event("Delete"), None)
        self.assertEqual(self.sent, [("SUCCESS", "dead-letter-sources", None)])

    def test_a_refused_call_is_reported_failed_so_the_stack_rolls_back(self):
        self.stub.add_client_error("set_queue_attributes", "AccessDenied", "not allowed")
        with self.stub:
            self.handler(event("Create"), None)
        ((status, _, reason),) = self.sent
        self.assertEqual(status, "FAILED")
        self.assertIn("AccessDenied", reason)


if __name__ == "__main__":
    unittest.main()
