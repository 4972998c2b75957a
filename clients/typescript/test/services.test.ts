// Without a server: the client covers every generated service, and the
// helpers build what the wire needs.

import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { test } from "node:test";

import { configValues, createClient, paginate, services, type Page } from "../src/index.js";

const genDir = new URL("../src/gen/deis/v2/", import.meta.url);

test("every generated deis.v2 service has a client", async () => {
  const generated = new Set<string>();
  for (const file of (await readdir(genDir)).filter((f) => f.endsWith("_pb.js"))) {
    const module = (await import(new URL(file, genDir).href)) as Record<string, unknown>;
    for (const [name, value] of Object.entries(module)) {
      if (name.endsWith("Service") && (value as { kind?: string }).kind === "service") {
        generated.add((value as { typeName: string }).typeName);
      }
    }
  }
  const covered = new Set(Object.values(services).map((s) => s.typeName));
  assert.deepEqual([...generated].sort(), [...covered].sort());

  const client = createClient("http://127.0.0.1:9");
  try {
    for (const [name, service] of Object.entries(services)) {
      const methods = (client as unknown as Record<string, Record<string, unknown>>)[name];
      for (const method of service.methods) {
        assert.equal(typeof methods?.[method.localName], "function", `${name}.${method.localName}`);
      }
    }
  } finally {
    client.close();
  }
});

test("configValues maps plain values to google.protobuf.Value", () => {
  const values = configValues({ A: "x", B: 2, C: null });
  assert.deepEqual(values.A?.kind, { case: "stringValue", value: "x" });
  assert.deepEqual(values.B?.kind, { case: "numberValue", value: 2 });
  assert.equal(values.C?.kind.case, "nullValue");
});

test("paginate walks limit and offset until there is no next page", async () => {
  const items = ["a", "b", "c", "d", "e"];
  const calls: Array<[number, number, string]> = [];
  const list = async (request: { app: string; limit: number; offset: number }): Promise<Page<string>> => {
    calls.push([request.limit, request.offset, request.app]);
    const results = items.slice(request.offset, request.offset + request.limit);
    const more = request.offset + request.limit < items.length;
    return { count: items.length, results, ...(more ? { next: "/v2/more" } : {}) };
  };
  const seen = [];
  for await (const item of paginate(list, { app: "web" }, { pageSize: 2 })) {
    seen.push(item);
  }
  assert.deepEqual(seen, items);
  assert.deepEqual(calls, [[2, 0, "web"], [2, 2, "web"], [2, 4, "web"]]);
  await assert.rejects(paginate(list, { app: "web" }, { pageSize: -1 }).next(), RangeError);
});
