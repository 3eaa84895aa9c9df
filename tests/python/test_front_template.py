"""The optional front (front/template.yaml), as deployed (run by scripts/test.sh with unittest):
it adds the origin header the receiver checks (the same name as src/origin.rs's), passes every
request through uncached over HTTPS with the viewer's headers, and rate-limits each client
address with WAF. docs/security.md, "The optional front"."""

import pathlib
import re
import unittest

from cfnlint.decode import cfn_yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
FRONT = cfn_yaml.load(str(ROOT / "front" / "template.yaml"))
RESOURCES = FRONT["Resources"]
CONFIG = RESOURCES["FrontDistribution"]["Properties"]["DistributionConfig"]


class TheFront(unittest.TestCase):
    def test_it_adds_the_header_the_receiver_checks_with_the_secret_value(self):
        receiver = (ROOT / "src" / "origin.rs").read_text()
        header = re.search(r'pub const ORIGIN_HEADER: &str = "([^"]+)";', receiver).group(1)
        (origin,) = CONFIG["Origins"]
        self.assertEqual(origin["OriginCustomHeaders"],
                         [{"HeaderName": header, "HeaderValue": {"Ref": "OriginValue"}}])
        self.assertTrue(FRONT["Parameters"]["OriginValue"]["NoEcho"])
        self.assertGreaterEqual(FRONT["Parameters"]["OriginValue"]["MinLength"], 32)
        self.assertEqual(origin["CustomOriginConfig"]["OriginProtocolPolicy"], "https-only")

    def test_it_passes_requests_through_uncached_and_over_https_only(self):
        behavior = CONFIG["DefaultCacheBehavior"]
        self.assertIn("POST", behavior["AllowedMethods"])
        self.assertEqual(behavior["ViewerProtocolPolicy"], "https-only")
        # AWS managed policies: CachingDisabled, AllViewerExceptHostHeader.
        self.assertEqual(behavior["CachePolicyId"], "4135ea2d-6df8-44a3-9df3-4b5a84be39ad")
        self.assertEqual(behavior["OriginRequestPolicyId"], "b689b0a8-53d0-40ab-baf2-68738e2966ac")
        self.assertFalse(behavior["Compress"])

    def test_waf_blocks_an_address_over_its_rate(self):
        self.assertEqual(CONFIG["WebACLId"], {"Fn::GetAtt": ["FrontWebAcl", "Arn"]})
        acl = RESOURCES["FrontWebAcl"]["Properties"]
        self.assertEqual(acl["Scope"], "CLOUDFRONT")
        (rate,) = [rule for rule in acl["Rules"] if "RateBasedStatement" in rule["Statement"]]
        statement = rate["Statement"]["RateBasedStatement"]
        self.assertEqual(statement["AggregateKeyType"], "IP")
        self.assertEqual(statement["EvaluationWindowSec"], 60)
        self.assertEqual(statement["Limit"], {"Ref": "RequestsPerMinutePerAddress"})
        self.assertEqual(rate["Action"], {"Block": {}})


if __name__ == "__main__":
    unittest.main()
