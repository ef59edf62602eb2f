// libs: hsp_cli
/*
 * The config file is user input: any bytes in it must give either settings or a one-line
 * error, never a crash or an overlong message.
 */
#include "options.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char path[64];
  if (!path[0]) {
    if (sodium_init() < 0) abort();
    snprintf(path, sizeof path, "/tmp/hsp-fuzz-config-%d", (int)getpid());
  }
  FILE *f = fopen(path, "wb");
  if (!f) abort();
  fwrite(data, 1, size, f);
  fclose(f);

  char *argv[] = {"proxy", "--config", path, "-p", "1", "-r", "a@1", NULL};
  char *envp[] = {NULL};
  hsp_options_t opts;
  char err[512];
  err[0] = '\0';
  if (hsp_options_parse(&opts, 7, argv, envp, err, sizeof err) != 0) {
    if (!err[0] || strchr(err, '\n')) abort();
  }
  return 0;
}
