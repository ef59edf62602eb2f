/* A tiny HTTP server for the end-to-end tests and the demo: answers every request with
 * "TEXT\n" and closes the connection.
 * usage: http_hello PORT TEXT   (PORT 0 = any; prints "listening PORT") */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static void serve(int fd, const char *text) {
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char req[8192];
  size_t len = 0;
  while (len < sizeof req - 1) { /* the request head */
    ssize_t n = read(fd, req + len, sizeof req - 1 - len);
    if (n <= 0) return;
    len += (size_t)n;
    req[len] = '\0';
    if (strstr(req, "\r\n\r\n")) break;
  }
  char resp[4096];
  int n = snprintf(resp, sizeof resp,
                   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n%s\n",
                   strlen(text) + 1, text);
  for (int off = 0; off < n;) {
    ssize_t w = write(fd, resp + off, (size_t)(n - off));
    if (w <= 0) return;
    off += (int)w;
  }
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: http_hello PORT TEXT\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof a;
  if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 64) ||
      getsockname(s, (struct sockaddr *)&a, &alen)) {
    perror("http_hello");
    return 1;
  }
  printf("listening %u\n", ntohs(a.sin_port));
  fflush(stdout);
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    serve(c, argv[2]);
    close(c);
  }
}
