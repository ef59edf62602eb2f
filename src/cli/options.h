/*
 * Command-line options, resolved as the original Node tool did (rc style): `key=value` lines
 * from the config file, then environment variables `hyperseaport_<key>`, then flags; later wins.
 * Every subcommand and flag is described once in a table (options.c), which drives parsing,
 * validation and --help alike.
 */
#ifndef HSP_CLI_OPTIONS_H
#define HSP_CLI_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define HSP_KEY_BYTES 32
#define HSP_OPT_TEXT 1024

enum hsp_command {
  HSP_CMD_REGISTRY,
  HSP_CMD_SEED,
  HSP_CMD_SERVICE,
  HSP_CMD_PROXY,
  HSP_CMD_WEB,
  HSP_CMD_DHT_NODE,
  HSP_CMD_PIPE,
  HSP_CMD_LS,
  HSP_CMD_COUNT
};

typedef struct hsp_options {
  enum hsp_command command;
  bool help;
  bool version;

  bool has_seed;
  uint8_t registry_seed[HSP_KEY_BYTES];
  bool has_public_key;
  uint8_t registry_public_key[HSP_KEY_BYTES];

  char bootstrap[HSP_OPT_TEXT]; /* "host:port[,host:port...]"; empty means the public nodes */
  bool has_bootstrap; /* given (dht-node: an empty list makes the first node of a network) */
  bool has_host;      /* --host given (dht-node, pipe: the address to bind) */
  bool listen;        /* pipe --listen */
  bool has_pipe_seed; /* pipe --seed */
  uint8_t pipe_seed[HSP_KEY_BYTES];
  bool has_pipe_allow; /* pipe --listen --allow: the only client key accepted */
  uint8_t pipe_allow[HSP_KEY_BYTES];
  bool has_pipe_key;  /* pipe KEY */
  uint8_t pipe_key[HSP_KEY_BYTES];
  char storage[HSP_OPT_TEXT];
  char config_path[HSP_OPT_TEXT]; /* the file that was read, or "" if none existed */

  int port;     /* --port: the local service (service), or the local listener (proxy, web) */
  int web_port; /* --web on the registry: 0 = no gateway */
  char host[HSP_OPT_TEXT];
  char role_name[HSP_OPT_TEXT];
  char role_version[HSP_OPT_TEXT]; /* exact version (service) or range (proxy, ls) */
  bool has_role;
  bool has_bind;                   /* --bind: address of the DHT sockets (default 0.0.0.0) */
  char bind[HSP_OPT_TEXT];
  uint32_t ttl_ms;                 /* service --ttl (default 15 s) */
  bool json;                       /* ls --json */
  int balance;                     /* proxy --balance: an hsp_bal_policy_t (default p2c) */
  bool has_wait;
  uint64_t wait_ms;                /* proxy --wait (default 10 s) */
  char check[HSP_OPT_TEXT];        /* service --check (default "tcp") */
  uint64_t check_interval_ms;      /* service --check-interval (default 5 s) */
  bool has_drain;
  uint64_t drain_ms;               /* service --drain (default 30 s) */
} hsp_options_t;

/* Parses argv (without argv[0]) with the environment given as a NULL-terminated envp.
 * Returns 0, or -1 with a one-line message (no trailing newline) in err. */
int hsp_options_parse(hsp_options_t *opts, int argc, char **argv, char **envp, char *err,
                      size_t err_len);

const char *hsp_command_name(enum hsp_command cmd);

/* Usage text of one command (or the overview for HSP_CMD_COUNT), from the option table. */
void hsp_options_print_help(FILE *out, enum hsp_command cmd);

#endif
