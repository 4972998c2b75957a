// The client against a live `deis-workflow up` on loopback ports: register,
// login, apps, config, pagination, permissions and destroy.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

import { configValues, createClient, paginate, type DeisClient } from "../src/index.js";
import { UpServer } from "./up.js";

const ADMIN = { username: "admin", password: "admin-secret-1", email: "admin@example.com" };
const OTHER = { username: "bob", password: "bob-secret-1", email: "bob@example.com" };
const APP = "ts-client-app";
const MORE_APPS = ["ts-page-a", "ts-page-b", "ts-page-c", "ts-page-d"];

let up: UpServer;
let admin: DeisClient;
let other: DeisClient;
// The (limit, offset) of every ListApps call the admin client makes.
const listAppsCalls: Array<[number, number]> = [];

const recordListApps: Interceptor = (next) => (request) => {
  if (request.method.name === "ListApps" && !request.stream) {
    const { limit, offset } = request.message as unknown as { limit: number; offset: number };
    listAppsCalls.push([limit, offset]);
  }
  return next(request);
};

/** The error `call` fails with, which must be a ConnectError. */
async function connectError(call: () => Promise<unknown>): Promise<ConnectError> {
  try {
    await call();
  } catch (err) {
    assert.ok(err instanceof ConnectError, `expected a ConnectError, got ${String(err)}`);
    return err;
  }
  assert.fail("the call succeeded");
}

before(async () => {
  up = await UpServer.start();
  admin = createClient(up.url, { interceptors: [recordListApps], timeoutMs: 30_000 });
  other = createClient(up.url, { timeoutMs: 30_000 });
});

after(async () => {
  admin?.close();
  other?.close();
  await up?.interrupt();
});

test("the first user to register is an administrator", async () => {
  const { user } = await admin.auth.register(ADMIN);
  assert.equal(user?.username, ADMIN.username);
  assert.equal(user?.email, ADMIN.email);
  assert.equal(user?.isSuperuser, true);
});

test("calls without a token are unauthenticated", async () => {
  const err = await connectError(() => admin.auth.whoami({}));
  assert.equal(err.code, Code.Unauthenticated);
});

test("login stores the token and sends it", async () => {
  const token = await admin.login(ADMIN.username, ADMIN.password);
  assert.match(token, /\S{16,}/);
  assert.equal(admin.token, token);
  const { user } = await admin.auth.whoami({});
  assert.equal(user?.username, ADMIN.username);

  // A token given up front works the same way.
  const again = createClient(up.url, { token });
  try {
    assert.equal((await again.auth.whoami({})).user?.username, ADMIN.username);
  } finally {
    again.close();
  }
});

test("a wrong password is refused", async () => {
  const err = await connectError(() => other.login(ADMIN.username, "not-the-password"));
  assert.equal(err.code, Code.Unauthenticated);
  assert.equal(other.token, undefined);
});

test("create an app", async () => {
  const { app } = await admin.apps.createApp({ id: APP });
  assert.equal(app?.id, APP);
  assert.equal(app?.owner, ADMIN.username);
  assert.ok(app?.created, "the app has a creation time");

  const { app: fetched } = await admin.apps.getApp({ id: APP });
  assert.equal(fetched?.uuid, app?.uuid);
});

test("set config and read it back", async () => {
  const set = await admin.config.setConfig({
    app: APP,
    values: configValues({ GREETING: "hello from TypeScript", WORKERS: 3 }),
  });
  assert.equal(set.releaseVersion, 2, "v1 came with the app; the change made v2");
  assert.equal(set.config?.values.GREETING, "hello from TypeScript");

  const { config } = await admin.config.getConfig({ app: APP });
  assert.deepEqual(config?.values, { GREETING: "hello from TypeScript", WORKERS: "3" });
  assert.equal(config?.app, APP);

  // null unsets a key.
  const unset = await admin.config.setConfig({ app: APP, values: configValues({ WORKERS: null }) });
  assert.deepEqual(unset.config?.values, { GREETING: "hello from TypeScript" });
  assert.equal(unset.releaseVersion, 3);
});

test("list apps across pages", async () => {
  for (const id of MORE_APPS) {
    await admin.apps.createApp({ id });
  }
  const all = [APP, ...MORE_APPS].sort();

  const first = await admin.apps.listApps({ limit: 2 });
  assert.equal(first.count, all.length);
  assert.equal(first.results.length, 2);
  assert.equal(first.previous, undefined);
  assert.ok(first.next, "a first page of two has a next page");

  listAppsCalls.length = 0;
  const ids: string[] = [];
  for await (const app of paginate(admin.apps.listApps, {}, { pageSize: 2 })) {
    ids.push(app.id);
  }
  assert.deepEqual([...ids].sort(), all);
  assert.equal(new Set(ids).size, ids.length, "no app twice");
  assert.deepEqual(listAppsCalls, [[2, 0], [2, 2], [2, 4]]);

  // The server's default page size holds them all: one call.
  listAppsCalls.length = 0;
  const everything = [];
  for await (const app of paginate(admin.apps.listApps, {})) {
    everything.push(app.id);
  }
  assert.deepEqual(everything.sort(), all);
  assert.deepEqual(listAppsCalls, [[0, 0]]);
});

test("paginate passes the other request fields (releases of an app)", async () => {
  const versions = [];
  for await (const release of paginate(admin.releases.listReleases, { app: APP }, { pageSize: 1 })) {
    versions.push(release.version);
  }
  assert.deepEqual(versions.sort(), [1, 2, 3]);
});

test("another user may not touch the admin's app", async () => {
  await other.auth.register(OTHER);
  await other.login(OTHER.username, OTHER.password);
  assert.equal((await other.auth.whoami({})).user?.isSuperuser, false);

  // They see none of the admin's apps...
  const mine = await other.apps.listApps({});
  assert.equal(mine.count, 0);
  assert.deepEqual(mine.results, []);

  // ...and may neither read, configure nor destroy one.
  for (const call of [
    () => other.apps.getApp({ id: APP }),
    () => other.config.getConfig({ app: APP }),
    () => other.config.setConfig({ app: APP, values: configValues({ X: "1" }) }),
    () => other.apps.deleteApp({ id: APP }),
  ]) {
    const err = await connectError(call);
    assert.equal(err.code, Code.PermissionDenied, err.message);
  }
  // Administrator-only RPCs too.
  const err = await connectError(() => other.users.listUsers({}));
  assert.equal(err.code, Code.PermissionDenied, err.message);

  // The app is still there.
  assert.equal((await admin.apps.getApp({ id: APP })).app?.id, APP);
});

test("destroy the apps", async () => {
  for (const id of [APP, ...MORE_APPS]) {
    await admin.apps.deleteApp({ id });
  }
  const err = await connectError(() => admin.apps.getApp({ id: APP }));
  assert.equal(err.code, Code.NotFound);
  assert.equal((await admin.apps.listApps({})).count, 0);
});
