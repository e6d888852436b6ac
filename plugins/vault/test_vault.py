"""Unit tests of vault_api on the host's Python (scripts/build-plugins-python.sh
runs them before building): settings, the held-key check, and check-and-set
against a scripted Vault. The end-to-end tests are tests/vault.rs."""

import json
import unittest

import vault_api
from vault_api import Response, SettingsError, VaultError


def settings(**values):
    base = {"addr": "http://127.0.0.1:8200", "path": "ci/bot"}
    base.update(values)
    return vault_api.load_settings(base.get)


class SettingsTest(unittest.TestCase):
    def test_defaults(self):
        s = settings()
        self.assertEqual((s.mount, s.key_id_field, s.secret_key_field, s.approle_mount),
                         ("secret", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "approle"))
        self.assertEqual(s.data_path, "/v1/secret/data/ci/bot")

    def test_refused(self):
        for bad in ({"addr": None}, {"addr": "vault:8200"}, {"path": "../x"},
                    {"key-id-field": "A", "secret-key-field": "A"}, {"role-id": "r"},
                    {"mount": "a b"}):
            with self.subTest(bad=bad), self.assertRaises(SettingsError):
                settings(**bad)


class HeldKeyTest(unittest.TestCase):
    def test_current_abandoned_or_nothing_only(self):
        s = settings()
        for data in (None, {}, {"AWS_ACCESS_KEY_ID": ""}, {"AWS_ACCESS_KEY_ID": "AKIAOLD"},
                     {"AWS_ACCESS_KEY_ID": "AKIALEFT"}):
            self.assertIsNone(vault_api.held_key_problem(data, s, "AKIAOLD", ["AKIALEFT"], "u"))
        problem = vault_api.held_key_problem({"AWS_ACCESS_KEY_ID": "AKIAOTHER"}, s, "AKIAOLD",
                                             [], "u")
        self.assertIn("AKIAOTHER", problem)
        self.assertNotIn("interrupted", problem)

    def test_any_of_two_abandoned_keys(self):
        """Two runs interrupted in a row: the secret may hold either key they
        left (newest first); any other key is still refused, naming both."""
        s = settings()
        left = ["AKIANEWERLEFT", "AKIAOLDERLEFT"]
        for held in ("AKIAOLDERLEFT", "AKIANEWERLEFT", "AKIAOLD"):
            self.assertIsNone(vault_api.held_key_problem({"AWS_ACCESS_KEY_ID": held}, s,
                                                         "AKIAOLD", left, "u"), held)
        self.assertIsNone(vault_api.held_key_problem({"AWS_ACCESS_KEY_ID": "AKIAOLDERLEFT"}, s,
                                                     None, left, "u"))
        problem = vault_api.held_key_problem({"AWS_ACCESS_KEY_ID": "AKIAOTHER"}, s, "AKIAOLD",
                                             left, "u")
        self.assertIn("holds key AKIAOTHER", problem)
        self.assertIn("nor a key an interrupted run left (AKIANEWERLEFT, AKIAOLDERLEFT)", problem)


class StoreTest(unittest.TestCase):
    """A Vault whose secret changes under the first write when `race` is set."""

    def run_store(self, races):
        state = {"version": 3, "data": {"AWS_ACCESS_KEY_ID": "AKIAOLD", "region": "eu-west-1"}}
        writes = []

        def send(method, url, headers, body):
            if method == "GET":
                return Response(200, json.dumps({"data": {
                    "data": state["data"], "metadata": {"version": state["version"]}}}).encode())
            request = json.loads(body)
            writes.append(request)
            if len(writes) <= races:
                state["version"] += 1  # someone else wrote meanwhile
            if request["options"]["cas"] != state["version"]:
                return Response(400, json.dumps({"errors": [
                    "check-and-set parameter did not match the current version"]}).encode())
            state["version"] += 1
            state["data"] = request["data"]
            return Response(200, json.dumps({"data": {"version": state["version"]}}).encode())

        vault = vault_api.Vault(settings(), send, lambda s: None, lambda level, m: None)
        vault.store("AKIAOLD", [], "u", "AKIANEW", "s3cr3t")
        return state, writes

    def test_keeps_other_fields(self):
        state, writes = self.run_store(races=0)
        self.assertEqual(state["data"], {"AWS_ACCESS_KEY_ID": "AKIANEW",
                                         "AWS_SECRET_ACCESS_KEY": "s3cr3t",
                                         "region": "eu-west-1"})
        self.assertEqual(writes[0]["options"], {"cas": 3})

    def test_one_cas_mismatch_is_read_again(self):
        state, writes = self.run_store(races=1)
        self.assertEqual(len(writes), 2)
        self.assertEqual(state["data"]["AWS_ACCESS_KEY_ID"], "AKIANEW")

    def test_two_cas_mismatches_fail(self):
        with self.assertRaises(VaultError) as caught:
            self.run_store(races=2)
        self.assertIn("changed twice", str(caught.exception))
        self.assertNotIn("s3cr3t", str(caught.exception))


if __name__ == "__main__":
    unittest.main()
