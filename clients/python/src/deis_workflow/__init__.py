"""Python client for the Deis Workflow gRPC API (``deis.v2``).

    from deis_workflow import Client
    from deis_workflow.v2 import apps_pb2

    client = Client("http://127.0.0.1:8000")
    client.login("alice", "s3cret-pw")
    client.apps.CreateApp(apps_pb2.CreateAppRequest(id="demo"))

Messages and stubs generated from ``proto/deis/v2`` live in
:mod:`deis_workflow.v2` (``apps_pb2``, ``apps_pb2_grpc``, ...).
"""

from deis_workflow.client import Client, DeisError, paginate

__version__ = "0.1.0"

__all__ = ["Client", "DeisError", "paginate", "__version__"]
