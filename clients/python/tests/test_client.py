"""The hand-written layer without a server: URLs, services, paging, errors."""

from __future__ import annotations

import importlib
import pkgutil
import unittest
from collections.abc import Callable

import grpc

import deis_workflow
import deis_workflow.v2
from deis_workflow import Client, DeisError, paginate
from deis_workflow.client import _target
from deis_workflow.v2 import apps_pb2, keys_pb2


class TargetTest(unittest.TestCase):
    def test_targets(self) -> None:
        self.assertEqual(_target("http://127.0.0.1:8000"), ("127.0.0.1:8000", False))
        self.assertEqual(_target("http://127.0.0.1:8000/"), ("127.0.0.1:8000", False))
        self.assertEqual(_target("https://deis.example.com"), ("deis.example.com:443", True))
        self.assertEqual(_target("http://deis.example.com"), ("deis.example.com:80", False))
        self.assertEqual(_target("http://[::1]:8000"), ("[::1]:8000", False))

    def test_bad_urls(self) -> None:
        for url in ["127.0.0.1:8000", "ftp://host", "http://", "http://u:p@host", "http://host/v2", "http://h?x=1"]:
            with self.subTest(url=url), self.assertRaises(ValueError):
                _target(url)


class ServicesTest(unittest.TestCase):
    def test_every_service_is_an_attribute(self) -> None:
        with Client("http://127.0.0.1:1") as client:
            found = []
            for module in pkgutil.iter_modules(deis_workflow.v2.__path__):
                if not module.name.endswith("_pb2"):
                    continue
                pb2 = importlib.import_module(f"deis_workflow.v2.{module.name}")
                grpc_module = importlib.import_module(f"deis_workflow.v2.{module.name}_grpc")
                for service in pb2.DESCRIPTOR.services_by_name:
                    attribute = module.name[: -len("_pb2")]
                    stub = getattr(client, attribute)
                    self.assertIsInstance(stub, getattr(grpc_module, f"{service}Stub"))
                    found.append(service)
            self.assertEqual(len(found), 14, found)

    def test_messages_are_registered_under_the_package(self) -> None:
        self.assertEqual(apps_pb2.App.__module__, "deis_workflow.v2.apps_pb2")
        self.assertEqual(apps_pb2.App.DESCRIPTOR.full_name, "deis.v2.App")
        self.assertEqual(apps_pb2.DESCRIPTOR.name, "deis/v2/apps.proto")


class ErrorTest(unittest.TestCase):
    def test_unreachable_server(self) -> None:
        with Client("http://127.0.0.1:1") as client:
            with self.assertRaises(DeisError) as caught:
                client.whoami()
        self.assertEqual(caught.exception.code, grpc.StatusCode.UNAVAILABLE)
        self.assertTrue(str(caught.exception).startswith("UNAVAILABLE: "))

    def test_token(self) -> None:
        with Client("http://127.0.0.1:1", "abc") as client:
            self.assertEqual(client.token, "abc")
            other = client.with_token("def")
            self.assertEqual((client.token, other.token, other.url), ("abc", "def", client.url))
            other.close()


class PaginateTest(unittest.TestCase):
    """paginate against a fake ListKeys that pages like the controller."""

    def fake(
        self, total: int
    ) -> tuple[list[keys_pb2.ListKeysRequest], Callable[[keys_pb2.ListKeysRequest], keys_pb2.ListKeysResponse]]:
        seen: list[keys_pb2.ListKeysRequest] = []

        def list_keys(request: keys_pb2.ListKeysRequest) -> keys_pb2.ListKeysResponse:
            seen.append(keys_pb2.ListKeysRequest(limit=request.limit, offset=request.offset))
            limit = request.limit or 100
            offset = request.offset
            results = [keys_pb2.Key(id=f"k{i}") for i in range(offset, min(total, offset + limit))]
            page = keys_pb2.ListKeysResponse(count=total, results=results)
            if offset + limit < total:
                page.next = f"/v2/keys?limit={limit}&offset={offset + limit}"
            return page

        return seen, list_keys

    def test_follows_next(self) -> None:
        seen, list_keys = self.fake(5)
        keys = [k.id for k in paginate(list_keys, keys_pb2.ListKeysRequest(), page_size=2)]
        self.assertEqual(keys, ["k0", "k1", "k2", "k3", "k4"])
        self.assertEqual([(r.limit, r.offset) for r in seen], [(2, 0), (2, 2), (2, 4)])

    def test_one_page_and_empty(self) -> None:
        seen, list_keys = self.fake(3)
        self.assertEqual(len(list(paginate(list_keys, keys_pb2.ListKeysRequest()))), 3)
        self.assertEqual(len(seen), 1)
        seen, list_keys = self.fake(0)
        self.assertEqual(list(paginate(list_keys, keys_pb2.ListKeysRequest(limit=2))), [])

    def test_lazy(self) -> None:
        seen, list_keys = self.fake(10)
        pages = paginate(list_keys, keys_pb2.ListKeysRequest(), page_size=3)
        self.assertEqual(seen, [])
        self.assertEqual(next(pages).id, "k0")
        self.assertEqual(len(seen), 1)


class VersionTest(unittest.TestCase):
    def test_version(self) -> None:
        self.assertRegex(deis_workflow.__version__, r"^\d+\.\d+\.\d+$")


if __name__ == "__main__":
    unittest.main()
