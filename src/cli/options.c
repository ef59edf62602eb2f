#include "options.h"

#include "balance.h"
#include "crypto.h"
#include "health.h"
#include "hex.h"
#include "registry.h"
#include "semver.h"

#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum flag_id {
  F_HELP,
  F_VERSION,
  F_CONFIG,
  F_SEED,
  F_PUBLIC_KEY,
  F_BOOTSTRAP,
  F_STORAGE,
  F_WEB,
  F_PORT,
  F_HOST,
  F_ROLE,
  F_LISTEN,
  F_PIPE_SEED,
  F_ALLOW,
  F_BIND,
  F_TTL,
  F_JSON,
  F_BALANCE,
  F_WAIT,
  F_CHECK,
  F_CHECK_INTERVAL,
  F_DRAIN,
  F_COUNT
};

typedef struct flag_spec {
  const char *name;       /* long form, also the config and environment key */
  char short_name;        /* 0 if none */
  const char *value_name; /* NULL for a flag without a value */
  const char *help;
  bool in_config; /* may also come from the config file or the environment */
} flag_spec_t;

static const flag_spec_t flags[F_COUNT] = {
    [F_HELP] = {"help", 'h', NULL, "show this help", false},
    [F_VERSION] = {"version", 0, NULL, "print the version", false},
    [F_CONFIG] = {"config", 0, "FILE", "read settings from FILE instead of the default", false},
    [F_SEED] = {"registrySeed", 0, "HEX", "64 hex chars: the registry's secret seed", true},
    [F_PUBLIC_KEY] = {"registryPublicKey", 0, "HEX", "64 hex chars: the registry to use", true},
    [F_BOOTSTRAP] = {"bootstrap", 0, "HOST:PORT[,...]",
                     "DHT bootstrap nodes (default: the public HyperDHT nodes)", true},
    [F_STORAGE] = {"storage", 0, "DIR",
                   "where the registry keeps its data (default: ~/.local/share/hyperseaport)",
                   true},
    [F_WEB] = {"web", 0, "PORT", "also serve the HTTP gateway on PORT", false},
    [F_PORT] = {"port", 'p', "PORT", NULL, false},
    [F_HOST] = {"host", 0, "HOST", NULL, false},
    [F_ROLE] = {"role", 'r', "NAME@VERSION", NULL, false},
    [F_LISTEN] = {"listen", 'l', NULL, "accept connections instead of connecting to KEY", false},
    [F_PIPE_SEED] = {"seed", 0, "HEX", "64 hex chars: seed of the listening key pair (default: random)",
                     false},
    [F_ALLOW] = {"allow", 0, "HEX", "with --listen: accept only the client with this public key",
                 false},
    [F_BIND] = {"bind", 0, "HOST", "address for the HyperDHT sockets (default: 0.0.0.0)", false},
    [F_TTL] = {"ttl", 0, "SECONDS", "lease length: 15 (seconds), 15s or 1500ms; renewed at a third "
               "(default 15 s, 1 s to 1 h)", false},
    [F_JSON] = {"json", 0, NULL, "print JSON (one array) instead of lines", false},
    [F_BALANCE] = {"balance", 0, "POLICY", "p2c (default: the less loaded and faster of two "
                   "random instances), round-robin, least-conn, hash (sticky by client address) "
                   "or first", false},
    [F_WAIT] = {"wait", 0, "SECONDS", "hold a connection this long for an instance when none "
                "is healthy (default 10; 500ms also works)", false},
    [F_CHECK] = {"check", 0, "tcp|http:/PATH|none", "health check of the local service "
                 "(default tcp: connect to it); 3 failures deregister, a success registers again",
                 false},
    [F_CHECK_INTERVAL] = {"check-interval", 0, "SECONDS", "time between health checks "
                          "(default 5)", false},
    [F_DRAIN] = {"drain", 0, "SECONDS", "on SIGTERM, let open connections finish this long "
                 "(default 30)", false},
};

#define BIT(f) (1u << (f))
#define COMMON (BIT(F_HELP) | BIT(F_CONFIG))
#define NETWORKED (COMMON | BIT(F_PUBLIC_KEY) | BIT(F_BOOTSTRAP) | BIT(F_BIND))

typedef struct command_spec {
  const char *name;
  const char *usage;
  const char *summary;
  unsigned allowed;
  unsigned required;
  const char *port_help;
  const char *role_help;
  const char *host_help;
} command_spec_t;

static const command_spec_t commands[HSP_CMD_COUNT] = {
    [HSP_CMD_REGISTRY] = {"registry", "hyperseaport [registry] [--storage DIR] [--web PORT]",
                          "run the registry (the default command)",
                          NETWORKED | BIT(F_SEED) | BIT(F_STORAGE) | BIT(F_WEB) | BIT(F_HOST) |
                              BIT(F_VERSION) | BIT(F_BALANCE),
                          BIT(F_SEED), NULL, NULL,
                          "address of the --web gateway (default: 127.0.0.1)"},
    [HSP_CMD_SEED] = {"seed", "hyperseaport seed [--registrySeed HEX] > ~/.config/hyperseaport",
                      "print a new registry key pair (or the pair of an existing seed)",
                      BIT(F_HELP) | BIT(F_SEED), 0, NULL, NULL, NULL},
    [HSP_CMD_SERVICE] = {"service",
                         "hyperseaport service --port PORT --role NAME@VERSION "
                         "--registryPublicKey HEX",
                         "announce a local TCP service and keep it registered",
                         NETWORKED | BIT(F_PORT) | BIT(F_HOST) | BIT(F_ROLE) | BIT(F_TTL) |
                             BIT(F_CHECK) | BIT(F_CHECK_INTERVAL) | BIT(F_DRAIN),
                         BIT(F_PORT) | BIT(F_ROLE) | BIT(F_PUBLIC_KEY),
                         "port of the local service to announce",
                         "role and exact version, e.g. couchdb@3.2.2",
                         "host of the local service (default: localhost)"},
    [HSP_CMD_PROXY] = {"proxy",
                       "hyperseaport proxy --port PORT --role NAME@RANGE --registryPublicKey HEX",
                       "expose a matching remote service on a local port",
                       NETWORKED | BIT(F_PORT) | BIT(F_ROLE) | BIT(F_HOST) | BIT(F_STORAGE) |
                           BIT(F_BALANCE) | BIT(F_WAIT),
                       BIT(F_PORT) | BIT(F_ROLE) | BIT(F_PUBLIC_KEY),
                       "local port to listen on",
                       "role and semver range, e.g. couchdb@3.x",
                       "address to listen on (default: 127.0.0.1)"},
    [HSP_CMD_WEB] = {"web", "hyperseaport web --port PORT --registryPublicKey HEX",
                     "run the HTTP gateway: /role/NAME@RANGE/path, /list/NAME@RANGE, "
                     "/instance/KEY/path, the dashboard at / and /metrics",
                     NETWORKED | BIT(F_PORT) | BIT(F_HOST) | BIT(F_STORAGE) | BIT(F_BALANCE),
                     BIT(F_PORT) | BIT(F_PUBLIC_KEY), "local HTTP port to listen on", NULL,
                     "address to listen on (default: 127.0.0.1)"},
    [HSP_CMD_DHT_NODE] = {"dht-node", "hyperseaport dht-node [--port PORT] [--host HOST] "
                          "[--bootstrap HOST:PORT[,...]]",
                          "run a persistent HyperDHT node; --bootstrap \"\" starts a private "
                          "network (prints the node's address)",
                          COMMON | BIT(F_BOOTSTRAP) | BIT(F_PORT) | BIT(F_HOST), 0,
                          "UDP port to bind (default: any)", NULL, "address to bind (default: 0.0.0.0)"},
    [HSP_CMD_PIPE] = {"pipe", "hyperseaport pipe --listen [--seed HEX] | hyperseaport pipe KEY",
                      "netcat over HyperDHT: pipe stdin/stdout to the server with public key KEY, "
                      "or print our key and pipe each incoming connection",
                      COMMON | BIT(F_BOOTSTRAP) | BIT(F_HOST) | BIT(F_LISTEN) | BIT(F_PIPE_SEED) | BIT(F_ALLOW), 0,
                      NULL, NULL, "address to bind (default: 0.0.0.0)"},
    [HSP_CMD_LS] = {"ls", "hyperseaport ls [NAME[@RANGE]] [--json] --registryPublicKey HEX",
                    "list the live instances (of NAME whose version satisfies RANGE), from the "
                    "registry: highest version first, then in registration order",
                    NETWORKED | BIT(F_JSON), BIT(F_PUBLIC_KEY), NULL, NULL, NULL},
};

const char *hsp_command_name(enum hsp_command cmd) {
  return cmd < HSP_CMD_COUNT ? commands[cmd].name : "hyperseaport";
}

static int fail(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t err_len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, err_len, fmt, ap);
  va_end(ap);
  return -1;
}

static int parse_port(const char *text, int *port) {
  char *end;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (errno || end == text || *end || v < 1 || v > 65535) return -1;
  *port = (int)v;
  return 0;
}

/* "10" and "10s" are seconds, "500ms" milliseconds; from min_ms to max_ms. */
static int parse_duration(const char *text, uint64_t min_ms, uint64_t max_ms, uint64_t *out) {
  char *end;
  errno = 0;
  if (!isdigit((unsigned char)text[0])) return -1;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno) return -1;
  if (strcmp(end, "ms") == 0) {
  } else if (!*end || strcmp(end, "s") == 0) {
    if (v > UINT64_MAX / 1000) return -1;
    v *= 1000;
  } else {
    return -1;
  }
  if (v < min_ms || v > max_ms) return -1;
  *out = v;
  return 0;
}

/* A lease TTL as parse_duration reads it; the registry accepts 1 s to 1 h. */
static int parse_ttl(const char *text, uint32_t *ttl_ms) {
  uint64_t v;
  if (parse_duration(text, HSP_REG_TTL_MIN_MS, HSP_REG_TTL_MAX_MS, &v)) return -1;
  *ttl_ms = (uint32_t)v;
  return 0;
}

static int copy_text(char *dst, const char *src) {
  size_t n = strlen(src);
  if (n >= HSP_OPT_TEXT) return -1;
  memcpy(dst, src, n + 1);
  return 0;
}

static bool printable_token(const char *s) {
  for (; *s; s++)
    if (!isgraph((unsigned char)*s)) return false;
  return true;
}

/* A role is NAME@VERSION for a service (an exact semver version: that is what it runs) and
 * NAME@RANGE for a proxy or gateway (any node-semver range). */
static int parse_role(hsp_options_t *o, const char *text, const char *where, char *err,
                      size_t err_len) {
  char name[HSP_REG_NAME_MAX + 1], spec[HSP_SEMVER_RANGE_MAX_LEN + 1];
  bool exact = o->command == HSP_CMD_SERVICE;
  int split = hsp_reg_role_split(text, name, spec);
  if (split == 0 && !spec[0] && o->command == HSP_CMD_LS) snprintf(spec, sizeof spec, "*");
  if (split != 0 || !spec[0])
    return fail(err, err_len, "%s must be %s, e.g. %s, got '%s'", where,
                exact ? "NAME@VERSION" : "NAME@RANGE", exact ? "couchdb@3.2.2" : "couchdb@3.x",
                text);
  if (exact && !hsp_reg_version_valid(spec, strlen(spec)))
    return fail(err, err_len,
                "%s needs an exact version like couchdb@3.2.2, got '%s' (ranges are for proxy)",
                where, text);
  hsp_semver_range_t range;
  if (!exact) {
    if (hsp_semver_range_parse(&range, spec, strlen(spec)) != 0)
      return fail(err, err_len, "%s has an invalid semver range '%s', e.g. 3.x, ^3.2, >=1.5.0",
                  where, spec);
    hsp_semver_range_free(&range);
  }
  snprintf(o->role_name, sizeof o->role_name, "%s", name);
  snprintf(o->role_version, sizeof o->role_version, "%s", spec);
  o->has_role = true;
  return 0;
}

/* Each entry is host:port with a non-empty host and a port in range. */
static int check_bootstrap(const char *text) {
  if (!*text) return 0;
  const char *p = text;
  while (true) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    char entry[HSP_OPT_TEXT];
    if (len == 0 || len >= sizeof entry) return -1;
    memcpy(entry, p, len);
    entry[len] = '\0';
    char *colon = strrchr(entry, ':');
    int port;
    if (!colon || colon == entry || parse_port(colon + 1, &port) || !printable_token(entry))
      return -1;
    if (!comma) return 0;
    p = comma + 1;
  }
}

/* Applies one setting; `where` names its source for the error ("--port", "FILE line 3"). */
static int apply(hsp_options_t *o, enum flag_id f, const char *value, const char *where,
                 char *err, size_t err_len) {
  switch (f) {
  case F_HELP: o->help = true; return 0;
  case F_VERSION: o->version = true; return 0;
  case F_CONFIG: return 0; /* consumed before the config file was read */
  case F_SEED:
  case F_PUBLIC_KEY: {
    uint8_t *key = f == F_SEED ? o->registry_seed : o->registry_public_key;
    /* The value is never echoed: it may be a secret seed. */
    if (hsp_hex_decode(key, HSP_KEY_BYTES, value) != 0)
      return fail(err, err_len,
                  "%s must be 64 hex characters (0-9, a-f), got %zu characters%s: use the %s "
                  "line printed by `hyperseaport seed`",
                  where, strlen(value), strlen(value) == 64 ? " with a non-hex one" : "",
                  flags[f].name);
    /* A key that is not a curve point can never be reached: say so now rather than after
     * a connect timeout. */
    if (f == F_PUBLIC_KEY && !crypto_core_ed25519_is_valid_point(key))
      return fail(err, err_len,
                  "%s is not a valid public key: use the %s line printed by `hyperseaport seed`",
                  where, flags[f].name);
    *(f == F_SEED ? &o->has_seed : &o->has_public_key) = true;
    return 0;
  }
  case F_LISTEN: o->listen = true; return 0;
  case F_PIPE_SEED:
    if (hsp_hex_decode(o->pipe_seed, HSP_KEY_BYTES, value) != 0)
      return fail(err, err_len, "%s must be 64 hex characters", where);
    o->has_pipe_seed = true;
    return 0;
  case F_ALLOW:
    if (hsp_hex_decode(o->pipe_allow, HSP_KEY_BYTES, value) != 0)
      return fail(err, err_len, "%s must be 64 hex characters", where);
    o->has_pipe_allow = true;
    return 0;
  case F_BOOTSTRAP:
    o->has_bootstrap = true;
    if (check_bootstrap(value) || copy_text(o->bootstrap, value))
      return fail(err, err_len,
                  "%s must be host:port[,host:port...] with ports 1-65535, got '%s'", where,
                  value);
    return 0;
  case F_STORAGE:
    if (!*value || copy_text(o->storage, value))
      return fail(err, err_len, "%s must be a directory path", where);
    return 0;
  case F_WEB:
  case F_PORT:
    if (parse_port(value, f == F_WEB ? &o->web_port : &o->port))
      return fail(err, err_len, "%s must be a port number from 1 to 65535, got '%s'", where,
                  value);
    return 0;
  case F_HOST:
    if (!*value || !printable_token(value) || copy_text(o->host, value))
      return fail(err, err_len, "%s must be a host name or address, got '%s'", where, value);
    o->has_host = true;
    return 0;
  case F_ROLE: return parse_role(o, value, where, err, err_len);
  case F_BIND:
    if (!*value || !printable_token(value) || copy_text(o->bind, value))
      return fail(err, err_len, "%s must be a host name or address, got '%s'", where, value);
    o->has_bind = true;
    return 0;
  case F_TTL:
    if (parse_ttl(value, &o->ttl_ms))
      return fail(err, err_len,
                  "%s must be a lease length from 1 s to 1 h: 15, 15s or 1500ms, got '%s'", where,
                  value);
    return 0;
  case F_JSON: o->json = true; return 0;
  case F_BALANCE: {
    hsp_bal_policy_t pol;
    if (hsp_bal_policy_parse(value, &pol) != 0)
      return fail(err, err_len,
                  "%s must be p2c, round-robin, least-conn, hash or first, got '%s'", where, value);
    o->balance = (int)pol;
    return 0;
  }
  case F_WAIT:
    if (parse_duration(value, 0, 3600000, &o->wait_ms))
      return fail(err, err_len, "%s must be a time from 0 to 1 h: 10, 10s or 500ms, got '%s'",
                  where, value);
    o->has_wait = true;
    return 0;
  case F_CHECK: {
    hsp_health_config_t hc;
    if (hsp_health_parse(value, &hc) != 0 || copy_text(o->check, value))
      return fail(err, err_len, "%s must be tcp, none or http:/PATH, got '%s'", where, value);
    return 0;
  }
  case F_CHECK_INTERVAL:
    if (parse_duration(value, 100, 3600000, &o->check_interval_ms))
      return fail(err, err_len,
                  "%s must be a time from 100 ms to 1 h: 5, 5s or 500ms, got '%s'", where, value);
    return 0;
  case F_DRAIN:
    if (parse_duration(value, 0, 3600000, &o->drain_ms))
      return fail(err, err_len, "%s must be a time from 0 to 1 h: 30, 30s or 500ms, got '%s'",
                  where, value);
    o->has_drain = true;
    return 0;
  case F_COUNT: break;
  }
  return fail(err, err_len, "internal error: unknown option");
}

static int find_flag(const char *arg, size_t len, bool is_short) {
  for (int f = 0; f < F_COUNT; f++) {
    if (is_short ? (len == 1 && flags[f].short_name == arg[0])
                 : (strlen(flags[f].name) == len && strncmp(flags[f].name, arg, len) == 0))
      return f;
  }
  return -1;
}

/* The winning raw value of each setting and where it came from, validated only once all
 * sources are read: a bad value that a later source overrides is not an error. */
typedef struct sources {
  const char *value[F_COUNT];
  char where[F_COUNT][HSP_OPT_TEXT + 64];
  char *owned[F_COUNT]; /* values copied out of the config file */
} sources_t;

static void set_source(sources_t *src, enum flag_id f, const char *value, const char *where) {
  src->value[f] = value;
  snprintf(src->where[f], sizeof src->where[f], "%s", where);
}

/* rc-style file: `key=value` (spaces around '=' allowed), '#' or ';' comments, blank lines.
 * A missing file is fine; an unreadable one, or one with a line we cannot use, is an error. */
static int load_config_file(hsp_options_t *o, sources_t *src, const char *path, bool must_exist,
                            char *err, size_t err_len) {
  FILE *f = fopen(path, "r");
  if (!f) {
    if (errno == ENOENT && !must_exist) return 0;
    return fail(err, err_len, "cannot read config file %s: %s", path, strerror(errno));
  }
  copy_text(o->config_path, path);
  char line[2 * HSP_OPT_TEXT];
  int number = 0, rc = 0;
  while (rc == 0 && fgets(line, sizeof line, f)) {
    number++;
    size_t len = strlen(line);
    if (len == sizeof line - 1 && line[len - 1] != '\n') {
      rc = fail(err, err_len, "%s line %d is too long", path, number);
      break;
    }
    while (len && isspace((unsigned char)line[len - 1])) line[--len] = '\0';
    char *key = line;
    while (isspace((unsigned char)*key)) key++;
    if (!*key || *key == '#' || *key == ';') continue;
    char *eq = strchr(key, '=');
    if (!eq) {
      rc = fail(err, err_len, "%s line %d: expected key=value, got '%s'", path, number, key);
      break;
    }
    char *key_end = eq;
    while (key_end > key && isspace((unsigned char)key_end[-1])) key_end--;
    *key_end = '\0';
    char *value = eq + 1;
    while (isspace((unsigned char)*value)) value++;
    int flag = find_flag(key, strlen(key), false);
    if (flag < 0 || !flags[flag].in_config) {
      rc = fail(err, err_len,
                "%s line %d: unknown key '%s' (known: registrySeed, registryPublicKey, "
                "bootstrap, storage)",
                path, number, key);
      break;
    }
    free(src->owned[flag]);
    src->owned[flag] = strdup(value);
    if (!src->owned[flag]) {
      rc = fail(err, err_len, "out of memory");
      break;
    }
    char where[HSP_OPT_TEXT + 64];
    snprintf(where, sizeof where, "%s in %s line %d", key, path, number);
    set_source(src, (enum flag_id)flag, src->owned[flag], where);
  }
  if (rc == 0 && ferror(f)) rc = fail(err, err_len, "cannot read config file %s", path);
  fclose(f);
  return rc;
}

static const char *env_get(char **envp, const char *name) {
  size_t len = strlen(name);
  for (; envp && *envp; envp++)
    if (strncmp(*envp, name, len) == 0 && (*envp)[len] == '=') return *envp + len + 1;
  return NULL;
}

static int default_config_path(char *out, size_t len, char **envp) {
  const char *xdg = env_get(envp, "XDG_CONFIG_HOME");
  const char *home = env_get(envp, "HOME");
  int n = xdg && *xdg ? snprintf(out, len, "%s/hyperseaport", xdg)
          : home      ? snprintf(out, len, "%s/.config/hyperseaport", home)
                      : -1;
  return n < 0 || (size_t)n >= len ? -1 : 0;
}

static void default_storage(hsp_options_t *o, char **envp) {
  const char *xdg = env_get(envp, "XDG_DATA_HOME");
  const char *home = env_get(envp, "HOME");
  if (xdg && *xdg) snprintf(o->storage, sizeof o->storage, "%s/hyperseaport", xdg);
  else snprintf(o->storage, sizeof o->storage, "%s/.local/share/hyperseaport", home ? home : ".");
}

static int collect_flags(hsp_options_t *o, const command_spec_t *cmd, int argc, char **argv,
                         sources_t *src, char *err, size_t err_len) {
  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i];
    bool is_short = arg[0] == '-' && arg[1] && arg[1] != '-' && !arg[2];
    bool is_long = strncmp(arg, "--", 2) == 0 && arg[2];
    if (!is_short && !is_long && o->command == HSP_CMD_PIPE && !o->has_pipe_key) {
      /* pipe KEY: the server's public key, the only positional argument. */
      if (hsp_hex_decode(o->pipe_key, HSP_KEY_BYTES, arg) != 0)
        return fail(err, err_len, "pipe: KEY must be 64 hex characters, got '%s'", arg);
      o->has_pipe_key = true;
      continue;
    }
    if (!is_short && !is_long && o->command == HSP_CMD_LS && !o->has_role) {
      /* ls NAME[@RANGE]: what to list, the only positional argument. */
      if (parse_role(o, arg, "ls NAME@RANGE", err, err_len)) return -1;
      continue;
    }
    if (!is_short && !is_long)
      return fail(err, err_len, "%s: unexpected argument '%s' (see hyperseaport %s --help)",
                  cmd->name, arg, cmd->name);
    const char *name = arg + (is_short ? 1 : 2);
    const char *eq = is_long ? strchr(name, '=') : NULL;
    size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
    int f = find_flag(name, name_len, is_short);
    if (f < 0 || !(cmd->allowed & BIT(f)))
      return fail(err, err_len, "%s: unknown flag %s (see hyperseaport %s --help)", cmd->name,
                  arg, cmd->name);
    const char *value = NULL;
    if (flags[f].value_name) {
      if (eq) value = eq + 1;
      else if (i + 1 < argc) value = argv[++i];
      else
        return fail(err, err_len, "%s: %s needs a value: %s %s", cmd->name, arg, arg,
                    flags[f].value_name);
    } else if (eq) {
      return fail(err, err_len, "%s: --%.*s takes no value", cmd->name, (int)name_len, name);
    }
    char where[80];
    snprintf(where, sizeof where, "%s%s", is_short ? "-" : "--", is_short ? name : flags[f].name);
    set_source(src, (enum flag_id)f, value ? value : "", where);
  }
  return 0;
}

int hsp_options_parse(hsp_options_t *o, int argc, char **argv, char **envp, char *err,
                      size_t err_len) {
  memset(o, 0, sizeof *o);
  o->ttl_ms = HSP_REG_TTL_DEFAULT_MS;
  o->wait_ms = 10000;
  snprintf(o->check, sizeof o->check, "tcp");
  o->check_interval_ms = 5000;
  o->drain_ms = 30000;
  snprintf(o->host, sizeof o->host, "localhost");
  default_storage(o, envp);

  o->command = HSP_CMD_REGISTRY;
  if (argc > 0 && argv[0][0] != '-') {
    int c = 0;
    while (c < HSP_CMD_COUNT && strcmp(argv[0], commands[c].name) != 0) c++;
    if (c == HSP_CMD_COUNT)
      return fail(err, err_len,
                  "unknown command '%s' (commands: registry, seed, service, proxy, web, ls, dht-node, pipe; see "
                  "hyperseaport --help)",
                  argv[0]);
    o->command = (enum hsp_command)c;
    argc--, argv++;
  }
  const command_spec_t *cmd = &commands[o->command];

  /* Sources are read in rising priority: config file, environment, flags. The flags are
   * scanned first only to learn --config; they are applied on top afterwards. */
  sources_t *flag_src = calloc(1, sizeof *flag_src), *src = calloc(1, sizeof *src);
  int rc = flag_src && src ? collect_flags(o, cmd, argc, argv, flag_src, err, err_len)
                           : fail(err, err_len, "out of memory");

  /* `seed` makes a new pair: a seed in the config file must not turn it into a no-op. */
  if (rc == 0 && o->command != HSP_CMD_SEED) {
    char path[HSP_OPT_TEXT];
    const char *config_file = flag_src->value[F_CONFIG];
    if (config_file) rc = load_config_file(o, src, config_file, true, err, err_len);
    else if (default_config_path(path, sizeof path, envp) == 0)
      rc = load_config_file(o, src, path, false, err, err_len);
    for (int f = 0; rc == 0 && f < F_COUNT; f++) {
      if (!flags[f].in_config) continue;
      char name[64];
      snprintf(name, sizeof name, "hyperseaport_%s", flags[f].name);
      const char *value = env_get(envp, name);
      if (value) set_source(src, (enum flag_id)f, value, name);
    }
  }
  for (int f = 0; rc == 0 && f < F_COUNT; f++)
    if (flag_src->value[f]) set_source(src, (enum flag_id)f, flag_src->value[f], flag_src->where[f]);
  unsigned given = 0;
  for (int f = 0; rc == 0 && f < F_COUNT; f++) {
    if (!src->value[f]) continue;
    rc = apply(o, (enum flag_id)f, src->value[f], src->where[f], err, err_len);
    given |= BIT(f);
  }
  for (int f = 0; src && f < F_COUNT; f++) free(src->owned[f]);
  free(src);
  free(flag_src);
  if (rc || o->help || o->version) return rc;

  if (o->has_seed && o->has_public_key) {
    hsp_crypto_keypair_t kp;
    hsp_crypto_keypair_from_seed(&kp, o->registry_seed);
    bool match = sodium_memcmp(kp.public_key, o->registry_public_key, HSP_KEY_BYTES) == 0;
    hsp_crypto_keypair_wipe(&kp);
    if (!match)
      return fail(err, err_len,
                  "registrySeed does not match registryPublicKey%s%s: fix one of them, or run "
                  "`hyperseaport seed` for a new pair",
                  o->config_path[0] ? " in " : "", o->config_path);
  }
  if (o->command == HSP_CMD_PIPE && o->listen == o->has_pipe_key)
    return fail(err, err_len, "pipe needs either --listen or a KEY (see hyperseaport pipe --help)");
  unsigned missing = cmd->required & ~given;
  if (missing & BIT(F_SEED))
    return fail(err, err_len,
                "%s needs registrySeed: run `hyperseaport seed > ~/.config/hyperseaport` first",
                cmd->name);
  if (missing & BIT(F_PUBLIC_KEY))
    return fail(err, err_len,
                "%s needs --registryPublicKey HEX (or registryPublicKey= in "
                "~/.config/hyperseaport): the key the registry printed",
                cmd->name);
  for (int f = 0; f < F_COUNT; f++)
    if (missing & BIT(f))
      return fail(err, err_len, "%s needs --%s %s (see hyperseaport %s --help)", cmd->name,
                  flags[f].name, flags[f].value_name, cmd->name);
  return 0;
}

void hsp_options_print_help(FILE *out, enum hsp_command which) {
  if (which >= HSP_CMD_COUNT) {
    fprintf(out,
            "hyperseaport: find and reach services by name and version over HyperDHT\n\n"
            "Commands:\n");
    for (int c = 0; c < HSP_CMD_COUNT; c++)
      fprintf(out, "  %-9s %s\n", commands[c].name, commands[c].summary);
    fprintf(out,
            "\nSettings come from ~/.config/hyperseaport (key=value lines), then environment\n"
            "variables hyperseaport_<key>, then flags. Run `hyperseaport COMMAND --help`.\n");
    return;
  }
  const command_spec_t *cmd = &commands[which];
  fprintf(out, "usage: %s\n\n%s\n\nflags:\n", cmd->usage, cmd->summary);
  for (int f = 0; f < F_COUNT; f++) {
    if (!(cmd->allowed & BIT(f))) continue;
    const char *help = f == F_PORT   ? cmd->port_help
                       : f == F_ROLE ? cmd->role_help
                       : f == F_HOST ? cmd->host_help
                                     : flags[f].help;
    char left[64];
    snprintf(left, sizeof left, "%c%c%c --%s %s", flags[f].short_name ? '-' : ' ',
             flags[f].short_name ? flags[f].short_name : ' ', flags[f].short_name ? ',' : ' ',
             flags[f].name, flags[f].value_name ? flags[f].value_name : "");
    fprintf(out, "  %-36s %s%s\n", left, help,
            cmd->required & BIT(f) ? " (required)" : "");
  }
}
