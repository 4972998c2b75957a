// The hand-written layer over the generated deis.v2 descriptors: one typed
// Connect client per service over gRPC (HTTP/2), the Deis token header,
// login, and a paginator for the List* RPCs.

import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema, type Value } from "@bufbuild/protobuf/wkt";
import {
  createClient as createServiceClient,
  type CallOptions,
  type Client,
  type Interceptor,
} from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";

import { AppsService } from "./gen/deis/v2/apps_pb.js";
import { AuthService } from "./gen/deis/v2/auth_pb.js";
import { BuildsService } from "./gen/deis/v2/builds_pb.js";
import { CertsService } from "./gen/deis/v2/certs_pb.js";
import { ConfigService } from "./gen/deis/v2/config_pb.js";
import { DomainsService } from "./gen/deis/v2/domains_pb.js";
import { DrainsService } from "./gen/deis/v2/drains_pb.js";
import { KeysService } from "./gen/deis/v2/keys_pb.js";
import { PermsService } from "./gen/deis/v2/perms_pb.js";
import { PlatformService } from "./gen/deis/v2/platform_pb.js";
import { PsService } from "./gen/deis/v2/ps_pb.js";
import { ReleasesService } from "./gen/deis/v2/releases_pb.js";
import { SettingsService } from "./gen/deis/v2/settings_pb.js";
import { UsersService } from "./gen/deis/v2/users_pb.js";

/** Every deis.v2 service, by the property name it has on a DeisClient. */
export const services = {
  apps: AppsService,
  auth: AuthService,
  builds: BuildsService,
  certs: CertsService,
  config: ConfigService,
  domains: DomainsService,
  drains: DrainsService,
  keys: KeysService,
  perms: PermsService,
  platform: PlatformService,
  ps: PsService,
  releases: ReleasesService,
  settings: SettingsService,
  users: UsersService,
} as const;

type Services = typeof services;

/** Typed Connect clients for every deis.v2 service. */
export type ServiceClients = { readonly [K in keyof Services]: Client<Services[K]> };

export interface ClientOptions {
  /** A token from Login (or `deis auth:login`); sent as `authorization: token <key>`. */
  token?: string;
  /** A deadline for every call, in milliseconds (none by default). */
  timeoutMs?: number;
  /** More interceptors, run after the one that adds the token. */
  interceptors?: Interceptor[];
}

export interface DeisClient extends ServiceClients {
  /** The controller URL the client talks to. */
  readonly url: string;
  /** The token sent with every call; undefined before login. */
  token: string | undefined;
  /** Exchanges a username and password for a token, keeps it, and returns it. */
  login(username: string, password: string, options?: CallOptions): Promise<string>;
  /** Closes the HTTP/2 connection; calls after this fail. */
  close(): void;
}

/**
 * A client for the controller at `url` (`http://host:port` speaks plaintext
 * HTTP/2, `https://` TLS), e.g. the `Controller` URL `deis-workflow up` prints.
 */
export function createClient(url: string, options: ClientOptions = {}): DeisClient {
  const baseUrl = url.replace(/\/+$/, "");
  let token = nonEmpty(options.token);

  // The controller's own header (not `Bearer`); Register, Login and
  // GetPlatformInfo work without it.
  const authorization: Interceptor = (next) => (request) => {
    if (token !== undefined) {
      request.header.set("authorization", `token ${token}`);
    }
    return next(request);
  };

  const sessionManager = new Http2SessionManager(baseUrl);
  const transport = createGrpcTransport({
    baseUrl,
    sessionManager,
    interceptors: [authorization, ...(options.interceptors ?? [])],
    defaultTimeoutMs: options.timeoutMs,
  });

  const clients = Object.fromEntries(
    Object.entries(services).map(([name, service]) => [name, createServiceClient(service, transport)]),
  ) as unknown as ServiceClients;

  return {
    ...clients,
    url: baseUrl,
    get token() {
      return token;
    },
    set token(value: string | undefined) {
      token = nonEmpty(value);
    },
    async login(username: string, password: string, callOptions?: CallOptions) {
      const response = await clients.auth.login({ username, password }, callOptions);
      token = nonEmpty(response.token);
      return response.token;
    },
    close() {
      sessionManager.abort();
    },
  };
}

function nonEmpty(token: string | undefined): string | undefined {
  const trimmed = token?.trim();
  return trimmed ? trimmed : undefined;
}

/** What every paged List* response carries (the Deis page envelope). */
export interface Page<T> {
  count: number;
  next?: string;
  previous?: string;
  results: T[];
}

export interface PaginateOptions {
  /** Items per request (`limit`); 0 or unset lets the server choose. */
  pageSize?: number;
  /** Options for every call, e.g. a signal or a timeout. */
  callOptions?: CallOptions;
}

/** A List* request without its paging fields. */
export type PagelessRequest<R> = R extends unknown ? Omit<R, "limit" | "offset" | "$typeName" | "$unknown"> : never;

/**
 * Every item of a paged List* RPC, fetching page after page (`limit` and
 * `offset`) until the server reports no `next` page:
 *
 *     for await (const app of paginate(client.apps.listApps, {}, { pageSize: 50 })) …
 *     for await (const r of paginate(client.releases.listReleases, { app: "web" })) …
 */
export async function* paginate<R extends { limit?: number; offset?: number }, T>(
  list: (request: R, options?: CallOptions) => Promise<Page<T>>,
  request: PagelessRequest<R>,
  options: PaginateOptions = {},
): AsyncGenerator<T, void, undefined> {
  const limit = options.pageSize ?? 0;
  if (!Number.isInteger(limit) || limit < 0) {
    throw new RangeError(`pageSize must be a non-negative integer, not ${limit}`);
  }
  let offset = 0;
  for (;;) {
    const page = await list({ ...request, limit, offset } as unknown as R, options.callOptions);
    yield* page.results;
    offset += page.results.length;
    if (page.next === undefined || page.results.length === 0) {
      return;
    }
  }
}

/**
 * Plain values as the `google.protobuf.Value` maps of SetConfig: strings and
 * numbers set a key, `null` unsets it.
 *
 *     client.config.setConfig({ app: "web", values: configValues({ DEBUG: "1", OLD: null }) })
 */
export function configValues(values: Record<string, JsonValue>): Record<string, Value> {
  return Object.fromEntries(Object.entries(values).map(([key, value]) => [key, fromJson(ValueSchema, value)]));
}
