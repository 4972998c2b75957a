"""The client against a live ``deis-workflow up`` on loopback ports."""

from __future__ import annotations

import unittest
from typing import Optional

import grpc
from google.protobuf import struct_pb2

from deis_workflow import Client, DeisError, paginate
from deis_workflow.v2 import apps_pb2, auth_pb2, config_pb2

from support import UpServer

ALICE = ("alice", "s3cret-pw", "alice@example.com")
BOB = ("bob", "an0ther-pw", "bob@example.com")


class LiveTest(unittest.TestCase):
    """One server for the class: alice registers first (an administrator)
    and logs in; each test uses its own apps."""

    server: Optional[UpServer] = None
    url: str
    alice: Client
    admin: auth_pb2.User

    @classmethod
    def setUpClass(cls) -> None:
        cls.server = UpServer()
        cls.url = cls.server.url
        cls.alice = Client(cls.url)
        cls.admin = cls.alice.register(*ALICE)
        cls.alice.login(ALICE[0], ALICE[1])

    @classmethod
    def tearDownClass(cls) -> None:
        if cls.server is None:
            return
        cls.alice.close()
        status = cls.server.interrupt()
        if status != 0:
            raise AssertionError(f"deis-workflow up exited with {status} on SIGINT:\n{cls.server.stderr()}")

    def create_app(self, client: Client, name: str) -> apps_pb2.App:
        app = client.apps.CreateApp(apps_pb2.CreateAppRequest(id=name)).app
        self.addCleanup(self.destroy_quietly, name)
        return app

    def destroy_quietly(self, name: str) -> None:
        try:
            self.alice.apps.DeleteApp(apps_pb2.DeleteAppRequest(id=name))
        except DeisError as error:
            if error.code != grpc.StatusCode.NOT_FOUND:
                raise

    def assert_fails(self, code: grpc.StatusCode, call: object, *args: object) -> DeisError:
        with self.assertRaises(DeisError) as caught:
            call(*args)  # type: ignore[operator]
        self.assertEqual(caught.exception.code, code, caught.exception.message)
        return caught.exception

    def test_first_user_is_admin_and_whoami(self) -> None:
        self.assertEqual(self.admin.username, "alice")
        self.assertTrue(self.admin.is_superuser)
        me = self.alice.whoami()
        self.assertEqual((me.username, me.email, me.is_superuser), ("alice", ALICE[2], True))

    def test_login_errors_and_tokens(self) -> None:
        anonymous = Client(self.url)
        self.addCleanup(anonymous.close)
        error = self.assert_fails(grpc.StatusCode.UNAUTHENTICATED, anonymous.whoami)
        self.assertIn("credentials were not provided", error.message)
        self.assert_fails(grpc.StatusCode.UNAUTHENTICATED, anonymous.login, "alice", "wrong-pw")
        self.assertIsNone(anonymous.token)
        self.assert_fails(grpc.StatusCode.UNAUTHENTICATED, anonymous.with_token("garbage").whoami)
        # A client whose token went bad can still log in.
        stale = Client(self.url, "garbage")
        self.addCleanup(stale.close)
        token = stale.login(ALICE[0], ALICE[1])
        self.assertEqual(stale.token, token)
        self.assertEqual(stale.whoami().username, "alice")
        # with_token: the stored token on a new channel.
        again = anonymous.with_token(self.alice.token or "")
        self.addCleanup(again.close)
        self.assertEqual(again.whoami().username, "alice")

    def test_create_config_destroy(self) -> None:
        app = self.create_app(self.alice, "py-config")
        self.assertEqual((app.id, app.owner), ("py-config", "alice"))
        self.assertEqual(self.alice.apps.GetApp(apps_pb2.GetAppRequest(id="py-config")).app.uuid, app.uuid)

        values = {"FOO": struct_pb2.Value(string_value="bar"), "WORKERS": struct_pb2.Value(number_value=3)}
        set_response = self.alice.config.SetConfig(config_pb2.SetConfigRequest(app="py-config", values=values))
        self.assertEqual(dict(set_response.config.values), {"FOO": "bar", "WORKERS": "3"})
        self.assertGreaterEqual(set_response.release_version, 2)
        config = self.alice.config.GetConfig(config_pb2.GetConfigRequest(app="py-config")).config
        self.assertEqual(dict(config.values), {"FOO": "bar", "WORKERS": "3"})

        # A null value unsets a key.
        unset = {"FOO": struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)}
        self.alice.config.SetConfig(config_pb2.SetConfigRequest(app="py-config", values=unset))
        config = self.alice.config.GetConfig(config_pb2.GetConfigRequest(app="py-config")).config
        self.assertEqual(dict(config.values), {"WORKERS": "3"})

        self.assert_fails(grpc.StatusCode.ALREADY_EXISTS, self.create_app, self.alice, "py-config")
        self.alice.apps.DeleteApp(apps_pb2.DeleteAppRequest(id="py-config"))
        error = self.assert_fails(
            grpc.StatusCode.NOT_FOUND, self.alice.apps.GetApp, apps_pb2.GetAppRequest(id="py-config")
        )
        self.assertIn("py-config", error.message)

    def test_invalid_argument(self) -> None:
        error = self.assert_fails(
            grpc.StatusCode.INVALID_ARGUMENT, self.alice.apps.CreateApp, apps_pb2.CreateAppRequest(id="Bad_Name")
        )
        self.assertIn("App name", error.message)
        self.assert_fails(
            grpc.StatusCode.INVALID_ARGUMENT, self.alice.apps.ListApps, apps_pb2.ListAppsRequest(limit=-1)
        )

    def test_paginate_apps(self) -> None:
        names = [f"py-page-{i}" for i in range(5)]
        for name in names:
            self.create_app(self.alice, name)
        pages: list[apps_pb2.ListAppsResponse] = []

        def list_apps(request: apps_pb2.ListAppsRequest) -> apps_pb2.ListAppsResponse:
            page = self.alice.apps.ListApps(request)
            pages.append(page)
            return page

        request = apps_pb2.ListAppsRequest()
        listed = [app.id for app in paginate(list_apps, request, page_size=2)]
        self.assertEqual(request.limit, 0, "paginate must not modify the request")
        self.assertEqual(sorted(set(listed)), sorted(listed), "an app listed twice")
        self.assertTrue(set(names) <= set(listed), listed)
        total = pages[0].count
        self.assertEqual(len(listed), total)
        self.assertEqual(len(pages), (total + 1) // 2)
        self.assertTrue(all(len(page.results) == 2 for page in pages[:-1]))
        self.assertFalse(pages[0].HasField("previous"))
        self.assertEqual(pages[0].next, "/v2/apps?limit=2&offset=2")
        self.assertEqual(pages[1].previous, "/v2/apps?limit=2")
        self.assertFalse(pages[-1].HasField("next"))

        # The method form, from an offset, with the request's own limit.
        rest = list(self.alice.paginate(self.alice.apps.ListApps, apps_pb2.ListAppsRequest(limit=3, offset=2)))
        self.assertEqual([app.id for app in rest], listed[2:])

    def test_permission_denied_for_another_user(self) -> None:
        self.create_app(self.alice, "py-private")
        bob = Client(self.url)
        self.addCleanup(bob.close)
        user = bob.register(*BOB)
        self.assertFalse(user.is_superuser)
        bob.login(BOB[0], BOB[1])
        self.assertEqual(bob.whoami().username, "bob")

        denied = grpc.StatusCode.PERMISSION_DENIED
        error = self.assert_fails(denied, bob.apps.GetApp, apps_pb2.GetAppRequest(id="py-private"))
        self.assertEqual(error.message, "You do not have permission to perform this action.")
        self.assertEqual(str(error), f"PERMISSION_DENIED: {error.message}")
        self.assert_fails(denied, bob.config.GetConfig, config_pb2.GetConfigRequest(app="py-private"))
        self.assert_fails(denied, bob.apps.DeleteApp, apps_pb2.DeleteAppRequest(id="py-private"))
        self.assertNotIn("py-private", [app.id for app in paginate(bob.apps.ListApps, apps_pb2.ListAppsRequest())])
        # Still there for its owner.
        self.assertEqual(self.alice.apps.GetApp(apps_pb2.GetAppRequest(id="py-private")).app.owner, "alice")

    def test_future_and_with_call(self) -> None:
        future = self.alice.auth.Whoami.future(auth_pb2.WhoamiRequest())
        self.assertEqual(future.result(timeout=30).user.username, "alice")
        response, call = self.alice.auth.Whoami.with_call(auth_pb2.WhoamiRequest())
        self.assertEqual((response.user.username, call.code()), ("alice", grpc.StatusCode.OK))
        failing = self.alice.apps.GetApp.future(apps_pb2.GetAppRequest(id="py-missing"))
        with self.assertRaises(DeisError) as caught:
            failing.result(timeout=30)
        self.assertEqual(caught.exception.code, grpc.StatusCode.NOT_FOUND)
        self.assertIsInstance(failing.exception(), DeisError)

    def test_stream_errors(self) -> None:
        follow = self.alice.apps.FollowLogs(apps_pb2.FollowLogsRequest(app="py-missing"), timeout=30)
        with self.assertRaises(DeisError) as caught:
            list(follow)
        self.assertEqual(caught.exception.code, grpc.StatusCode.NOT_FOUND)
        start = apps_pb2.RunAttachedRequest(start=apps_pb2.RunStart(app="py-missing", command="true"))
        attached = self.alice.apps.RunAttached(iter([start]), timeout=30)
        with self.assertRaises(DeisError) as caught:
            list(attached)
        self.assertEqual(caught.exception.code, grpc.StatusCode.NOT_FOUND)


if __name__ == "__main__":
    unittest.main()
