// The package entry point: the hand-written client and every generated deis.v2
// message type, schema and service descriptor.

export * from "./client.js";
export * from "./gen/deis/v2/apps_pb.js";
export * from "./gen/deis/v2/auth_pb.js";
export * from "./gen/deis/v2/builds_pb.js";
export * from "./gen/deis/v2/certs_pb.js";
export * from "./gen/deis/v2/config_pb.js";
export * from "./gen/deis/v2/domains_pb.js";
export * from "./gen/deis/v2/drains_pb.js";
export * from "./gen/deis/v2/keys_pb.js";
export * from "./gen/deis/v2/perms_pb.js";
export * from "./gen/deis/v2/platform_pb.js";
export * from "./gen/deis/v2/ps_pb.js";
export * from "./gen/deis/v2/releases_pb.js";
export * from "./gen/deis/v2/settings_pb.js";
export * from "./gen/deis/v2/users_pb.js";
