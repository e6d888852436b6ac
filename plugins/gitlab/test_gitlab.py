"""Unit tests of the plugin's pure modules on the host's Python:
`python3 -m unittest` in this directory (scripts/build-plugins-python.sh runs
them before building). The end-to-end tests are in tests/gitlab.rs."""

import json
import unittest
from urllib.parse import unquote, urlsplit

import gitlab_api
import settings
from gitlab_api import GitLab, GitLabError, Response, TransportError

TOKEN = "glpat-test-token"


def load(**values):
    return settings.load(lambda name: values.get(name.replace("-", "_")))


class FakeGitLab:
    """Project group/app (or group `group`, with `prefix`) with variables
    keyed by (key, scope); `fail` maps (method, key) to a status to answer
    instead; the first `rate_limited` requests get a 429 with Retry-After."""

    def __init__(self, variables=None, fail=None, token=TOKEN,
                 prefix="/api/v4/projects/group%2Fapp", rate_limited=0, retry_after="2"):
        self.variables = dict(variables or {})
        self.fail = dict(fail or {})
        self.token = token
        self.prefix = prefix
        self.rate_limited = rate_limited
        self.retry_after = retry_after
        self.calls = []
        self.bodies = []

    def send(self, method, url, headers, body):
        parts = urlsplit(url)
        headers = dict(headers)
        self.calls.append((method, unquote(parts.path)))
        self.bodies.append(json.loads(body) if body else None)
        if self.rate_limited:
            self.rate_limited -= 1
            return Response(429, b"Retry later\n", {"retry-after": self.retry_after,
                                                    "ratelimit-remaining": "0"})
        bearer = headers.get("authorization") == f"Bearer {self.token}"
        if headers.get("private-token") != self.token and not bearer:
            return self._reply(401, {"message": "401 Unauthorized"})
        prefix = self.prefix
        if not parts.path.startswith(prefix):
            kind = "Group" if "/groups/" in parts.path else "Project"
            return self._reply(404, {"message": f"404 {kind} Not Found"})
        rest = parts.path[len(prefix):]
        scope = unquote(parts.query.partition("=")[2])
        payload = json.loads(body) if body else {}
        key = rest.rpartition("/")[2] if rest.startswith("/variables/") else payload.get("key")
        if (method, key) in self.fail:
            return self._reply(self.fail[(method, key)], {"message": "boom"})
        if rest == "":
            return self._reply(200, {"id": 42, "path_with_namespace": "group/app"})
        if method == "POST":
            if (key, payload["environment_scope"]) in self.variables:
                return self._reply(400, {"message": {"key": [f"({key}) has already been taken"]}})
            # GitLab's documented defaults for what the request leaves out.
            created = {"variable_type": "env_var", "protected": False, "masked": False,
                       "raw": False, **payload}
            self.variables[(key, payload["environment_scope"])] = created
            return self._reply(201, created)
        existing = self.variables.get((key, scope))
        if existing is None:
            return self._reply(404, {"message": "404 Variable Not Found"})
        if method == "GET":
            return self._reply(200, existing)
        if method == "PUT":
            existing.update(payload)
            return self._reply(200, existing)
        del self.variables[(key, scope)]
        return self._reply(204, None)

    @staticmethod
    def _reply(status, body):
        return Response(status, b"" if body is None else json.dumps(body).encode())


class Logs(list):
    def __call__(self, level, message):
        self.append((level, message))


class SettingsTest(unittest.TestCase):
    def test_defaults(self):
        s = load(project="group/app")
        self.assertEqual((s.kind, s.target_id), ("project", "group%2Fapp"))
        self.assertEqual(s.api_url, "https://gitlab.com")
        self.assertEqual((s.key_id_variable, s.secret_key_variable),
                         ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))
        # Flags not set: an existing variable keeps its own.
        self.assertEqual((s.masked, s.protected, s.environment_scope), (None, None, "*"))
        self.assertIsNone(s.token)
        self.assertEqual(s.token_type, "private-token")

    def test_a_group(self):
        s = load(group="parent/sub", token_type="oauth")
        self.assertEqual((s.kind, s.target_id, s.where), ("group", "parent%2Fsub",
                                                          "group parent/sub"))
        self.assertEqual(s.token_type, "oauth")
        self.assertEqual(load(group="7").target_id, "7")

    def test_every_setting(self):
        s = load(project="42", token=TOKEN, api_url="https://gl.example.com/gitlab/api/v4/",
                 key_id_variable="KEY_ID", secret_key_variable="SECRET", masked="false",
                 protected="true", environment_scope="review/*")
        self.assertEqual(s.target_id, "42")
        self.assertEqual(s.api_url, "https://gl.example.com/gitlab")
        self.assertEqual((s.masked, s.protected, s.environment_scope), (False, True, "review/*"))
        self.assertNotIn(TOKEN, repr(s))

    def test_bad_values_name_their_setting(self):
        cases = [
            ({"project": None}, "set 'project'"),
            ({"group": "g"}, "both set"),
            ({"project": None, "group": "g?"}, "'group'"),
            ({"token_type": "job"}, "'token-type'"),
            ({"project": "app"}, "'project'"),
            ({"project": "0"}, "'project'"),
            ({"project": "group/app?x"}, "'project'"),
            ({"api_url": "gitlab.com"}, "'api-url'"),
            ({"api_url": "https://gitlab.com/?x=1"}, "'api-url'"),
            ({"key_id_variable": "AWS-KEY"}, "'key-id-variable'"),
            ({"secret_key_variable": ""}, "'secret-key-variable'"),
            ({"key_id_variable": "SAME", "secret_key_variable": "SAME"}, "must differ"),
            ({"masked": "yes"}, "'masked'"),
            ({"protected": "1"}, "'protected'"),
            ({"environment_scope": ""}, "'environment-scope'"),
            ({"environment_scope": " prod"}, "'environment-scope'"),
            ({"token": ""}, "'token'"),
        ]
        for values, expected in cases:
            values = {"project": "group/app", **values}
            with self.subTest(values=values):
                with self.assertRaises(settings.SettingsError) as raised:
                    load(**values)
                self.assertIn(expected, str(raised.exception))

    def test_token_errors_never_echo_it(self):
        with self.assertRaises(settings.SettingsError) as raised:
            load(project="group/app", token="glpat secret")
        self.assertNotIn("glpat", str(raised.exception))


class StoreTest(unittest.TestCase):
    def setUp(self):
        self.logs = Logs()

    def gitlab(self, fake, **values):
        values = {"project": "group/app", "token": TOKEN, **values}
        return GitLab(load(**values), fake.send, self.sleep, self.logs)

    def sleep(self, seconds):
        self.logs.append(("slept", seconds))

    def test_creates_both_variables_with_the_flags(self):
        fake = FakeGitLab()
        gitlab_api.store(self.gitlab(fake), "AKIAOLD", "AKIANEW", "s3cret/key+", self.logs)
        key_id = fake.variables[("AWS_ACCESS_KEY_ID", "*")]
        self.assertEqual(key_id["value"], "AKIANEW")
        self.assertEqual((key_id["masked"], key_id["protected"]), (True, False))
        self.assertEqual(fake.variables[("AWS_SECRET_ACCESS_KEY", "*")]["value"], "s3cret/key+")
        self.assertFalse(any("s3cret" in str(m) for _, m in self.logs))
        # A create leaves protected and the type to GitLab's defaults.
        posts = [b for (m, _), b in zip(fake.calls, fake.bodies) if m == "POST"]
        self.assertEqual(len(posts), 2)
        for body in posts:
            self.assertEqual(set(body), {"key", "value", "masked", "environment_scope"})

    def test_an_update_sends_the_value_and_only_the_flags_set(self):
        protected = {"value": "AKIAOLD", "protected": True, "masked": True, "raw": True,
                     "variable_type": "file", "description": "deploy key"}
        fake = FakeGitLab({
            ("AWS_ACCESS_KEY_ID", "*"): dict(protected),
            ("AWS_SECRET_ACCESS_KEY", "*"): dict(protected, value="old"),
        })
        gitlab_api.store(self.gitlab(fake), "AKIAOLD", "AKIANEW", "new", self.logs)
        puts = [b for (m, _), b in zip(fake.calls, fake.bodies) if m == "PUT"]
        self.assertEqual(puts, [{"value": "AKIANEW"}, {"value": "new"}])
        self.assertEqual(fake.variables[("AWS_ACCESS_KEY_ID", "*")],
                         dict(protected, value="AKIANEW"))
        fake.bodies.clear()
        fake.calls.clear()
        gitlab_api.store(self.gitlab(fake, masked="false"), "AKIANEW", "AKIA3", "s", self.logs)
        puts = [b for (m, _), b in zip(fake.calls, fake.bodies) if m == "PUT"]
        self.assertEqual(puts, [{"value": "AKIA3", "masked": False},
                                {"value": "s", "masked": False}])

    def test_group_variables_and_oauth_tokens(self):
        fake = FakeGitLab(prefix="/api/v4/groups/parent%2Fsub")
        gitlab = self.gitlab(fake, project=None, group="parent/sub", token_type="oauth")
        gitlab_api.store(gitlab, None, "AKIANEW", "new", self.logs)
        self.assertEqual(fake.variables[("AWS_ACCESS_KEY_ID", "*")]["value"], "AKIANEW")
        self.assertIn(("info", "created variable AWS_ACCESS_KEY_ID = AKIANEW in group "
                               "parent/sub (scope *)"), self.logs)

    def test_a_rate_limit_is_waited_out_within_bounds(self):
        fake = FakeGitLab(rate_limited=2, retry_after="3")
        gitlab_api.store(self.gitlab(fake), None, "AKIANEW", "new", self.logs)
        self.assertEqual([m for level, m in self.logs if level == "slept"], [3, 3])
        self.assertEqual(fake.variables[("AWS_ACCESS_KEY_ID", "*")]["value"], "AKIANEW")
        for retry_after, said in (("3600", "retry in 3600 s"), ("", "did not say when")):
            fake = FakeGitLab(rate_limited=5, retry_after=retry_after)
            with self.subTest(retry_after=retry_after):
                with self.assertRaises(GitLabError) as raised:
                    self.gitlab(fake).project()
                self.assertIn("GitLab is rate-limiting requests (429 Too Many Requests) while "
                              "reading project group/app", str(raised.exception))
                self.assertIn(said, str(raised.exception))

    def test_updates_existing_variables_in_their_scope_only(self):
        fake = FakeGitLab({
            ("AWS_ACCESS_KEY_ID", "production"): {"value": "AKIAOLD"},
            ("AWS_SECRET_ACCESS_KEY", "production"): {"value": "old"},
            ("AWS_ACCESS_KEY_ID", "*"): {"value": "AKIAOTHER"},
        })
        gitlab = self.gitlab(fake, environment_scope="production", protected="true")
        gitlab_api.store(gitlab, "AKIAOLD", "AKIANEW", "new", self.logs)
        self.assertEqual(fake.variables[("AWS_ACCESS_KEY_ID", "production")]["value"], "AKIANEW")
        self.assertTrue(fake.variables[("AWS_ACCESS_KEY_ID", "production")]["protected"])
        self.assertNotIn("masked", fake.variables[("AWS_ACCESS_KEY_ID", "production")])
        self.assertEqual(fake.variables[("AWS_SECRET_ACCESS_KEY", "production")]["value"], "new")
        self.assertEqual(fake.variables[("AWS_ACCESS_KEY_ID", "*")]["value"], "AKIAOTHER")
        self.assertNotIn("POST", [method for method, _ in fake.calls])

    def test_a_variable_created_meanwhile_is_updated(self):
        fake = FakeGitLab({("AWS_SECRET_ACCESS_KEY", "*"): {"value": "old"}})
        gitlab = self.gitlab(fake)
        self.assertEqual(gitlab.create("AWS_SECRET_ACCESS_KEY", "new"), "updated")
        self.assertEqual(fake.variables[("AWS_SECRET_ACCESS_KEY", "*")]["value"], "new")

    def test_a_failed_secret_restores_the_key_id(self):
        fake = FakeGitLab({("AWS_ACCESS_KEY_ID", "*"): {"value": "AKIAOLD"}},
                          fail={("POST", "AWS_SECRET_ACCESS_KEY"): 500})
        with self.assertRaises(GitLabError) as raised:
            gitlab_api.store(self.gitlab(fake), "AKIAOLD", "AKIANEW", "new", self.logs)
        message = str(raised.exception)
        self.assertIn("GitLab failed (HTTP 500) while creating variable AWS_SECRET_ACCESS_KEY of "
                      "project group/app",
                      message)
        self.assertIn("AWS_ACCESS_KEY_ID was restored to the previous key id AKIAOLD", message)
        self.assertEqual(fake.variables[("AWS_ACCESS_KEY_ID", "*")]["value"], "AKIAOLD")

    def test_a_failed_secret_deletes_a_key_id_it_created(self):
        fake = FakeGitLab(fail={("POST", "AWS_SECRET_ACCESS_KEY"): 403})
        with self.assertRaises(GitLabError) as raised:
            gitlab_api.store(self.gitlab(fake), None, "AKIANEW", "new", self.logs)
        self.assertIn("403 Forbidden", str(raised.exception))
        self.assertIn("did not exist before, was deleted again", str(raised.exception))
        self.assertEqual(fake.variables, {})

    def test_a_failed_restore_is_reported(self):
        fake = FakeGitLab({("AWS_ACCESS_KEY_ID", "*"): {"value": "AKIAOLD"}},
                          fail={("POST", "AWS_SECRET_ACCESS_KEY"): 502})
        calls = {"n": 0}

        def flaky(method, url, headers, body):
            if method == "PUT":
                calls["n"] += 1
                if calls["n"] == 2:  # the restore
                    raise TransportError("ConnectionRefused")
            return fake.send(method, url, headers, body)

        gitlab = GitLab(load(project="group/app", token=TOKEN), flaky, self.sleep)
        with self.assertRaises(GitLabError) as raised:
            gitlab_api.store(gitlab, "AKIAOLD", "AKIANEW", "new", self.logs)
        self.assertIn("still holds the new key id and could not be put back", str(raised.exception))
        self.assertIn("connection refused (ConnectionRefused)", str(raised.exception))


class CheckTest(unittest.TestCase):
    def test_reports_what_the_key_id_variable_holds(self):
        gitlab = GitLab(load(project="group/app", token=TOKEN), FakeGitLab().send, None)
        cases = [
            ("AKIAOLDOLDOLDOLDOLD0", ("info", "holds key AKIAOLDOLDOLDOLDOLD0")),
            ("AKIAOTHEROTHEROTHER0", ("warn", "holds key AKIAOTHEROTHEROTHER0, not the current "
                                              "key AKIAOLDOLDOLDOLDOLD0")),
            # Not a key id: maybe a secret, so never shown.
            ("wJalrXUtnFEMI/K7MDENG", ("warn", "holds something that is not an access key id")),
        ]
        for value, (level, expected) in cases:
            fake = FakeGitLab({("AWS_ACCESS_KEY_ID", "*"): {"value": value}})
            gitlab = GitLab(gitlab.settings, fake.send, None)
            logs = Logs()
            gitlab_api.check(gitlab, "AKIAOLDOLDOLDOLDOLD0", logs)
            self.assertIn(
                ("info", "project group/app (id 42) is reachable at https://gitlab.com"), logs)
            with self.subTest(value=value):
                self.assertEqual(logs[-1][0], level)
                self.assertIn(expected, logs[-1][1])
                if level == "warn" and "something" in expected:
                    self.assertNotIn(value, logs[-1][1])

    def test_says_what_each_variable_keeps_and_warns_about_file_variables(self):
        fake = FakeGitLab({
            ("AWS_ACCESS_KEY_ID", "*"): {"value": "AKIAOLDOLDOLDOLDOLD0", "protected": True,
                                         "masked": False, "variable_type": "file"},
        })
        logs = Logs()
        gitlab = GitLab(load(project="group/app", token=TOKEN, masked="true"), fake.send, None)
        gitlab_api.check(gitlab, "AKIAOLDOLDOLDOLDOLD0", logs)
        self.assertIn(("info", "variable AWS_ACCESS_KEY_ID (scope *) exists (protected, not "
                               "masked, type file): the value changes and masked becomes true "
                               "as set"), logs)
        self.assertIn(("warn", "variable AWS_ACCESS_KEY_ID (scope *) is of type file: jobs get "
                               "the path of a file that holds the value, not the value; it stays "
                               "a file variable"), logs)
        self.assertIn(("info", "variable AWS_SECRET_ACCESS_KEY (scope *) does not exist yet: it "
                               "will be created (not protected, masked, type env_var)"), logs)

    def test_a_hidden_variable_cannot_be_unmasked(self):
        fake = FakeGitLab({("AWS_SECRET_ACCESS_KEY", "*"): {"masked": True, "hidden": True}})
        gitlab = GitLab(load(project="group/app", token=TOKEN, masked="false"), fake.send, None)
        with self.assertRaises(GitLabError) as raised:
            gitlab_api.check(gitlab, None, Logs())
        self.assertIn("variable AWS_SECRET_ACCESS_KEY (scope *) is masked and hidden",
                      str(raised.exception))
        gitlab = GitLab(load(project="group/app", token=TOKEN), fake.send, None)
        gitlab_api.check(gitlab, None, Logs())

    def test_status_errors_say_what_to_do(self):
        cases = [
            (dict(token="wrong"), "GitLab rejected the token (401 Unauthorized) while reading "
             "project group/app: it is wrong"),
            (dict(), "there is no 'token' setting"),
            (dict(token=TOKEN, project="group/other"), "GitLab found no project group/other (404)"),
        ]
        for values, expected in cases:
            values = {"project": "group/app", **values}
            with self.subTest(values=values):
                gitlab = GitLab(load(**values), FakeGitLab().send, None)
                with self.assertRaises(GitLabError) as raised:
                    gitlab_api.check(gitlab, None, Logs())
                self.assertIn(expected, str(raised.exception))
                self.assertNotIn(TOKEN, str(raised.exception))

    def test_transport_errors_name_the_code_and_the_flag(self):
        def denied(*_):
            raise TransportError("HttpRequestDenied")

        gitlab = GitLab(load(project="group/app", api_url="http://127.0.0.1:8080"), denied, None)
        with self.assertRaises(GitLabError) as raised:
            gitlab.project()
        self.assertEqual(
            str(raised.exception),
            "cannot reach GitLab at http://127.0.0.1:8080 while reading project group/app: "
            "keyrot denied the request (HttpRequestDenied): allow the host "
            "with --allow-host http://127.0.0.1:8080",
        )
        self.assertEqual(gitlab_api.allow_host_flag("https://gitlab.com"), "gitlab.com")
        self.assertEqual(gitlab_api.allow_host_flag("https://gl.example.com:8443/x"),
                         "https://gl.example.com:8443")

    def test_messages_are_flattened_and_cut(self):
        self.assertEqual(gitlab_api._message(b'{"message": {"value": ["is invalid"]}}'),
                         "value: is invalid")
        self.assertEqual(len(gitlab_api._message(b"x" * 1000)), 303)


if __name__ == "__main__":
    unittest.main()
