/*
 * c-echo: a Lambda custom runtime in C on plain sockets, no libraries
 * beyond libc. It answers each event with the event itself.
 *
 *   musl-gcc -static -O2 -o bootstrap echo.c
 *
 * It reads AWS_LAMBDA_RUNTIME_API ("ip:port", an IP literal as Lambda
 * gives it) and then, over one keep-alive HTTP/1.1 connection (reopened
 * if the server closes it):
 *
 *   loop {
 *     GET  /2018-06-01/runtime/invocation/next        -> the event and its
 *          Lambda-Runtime-Aws-Request-Id header
 *     POST /2018-06-01/runtime/invocation/<id>/response   (the event, unchanged)
 *   }
 *
 * The HTTP parser is small and works in fixed-size buffers: a 16 KiB read
 * buffer, header lines of at most 8 KiB, bodies by Content-Length of at
 * most 6 MiB (Lambda's limit for a synchronous payload; the buffer is
 * static, so only what an event uses is ever touched). Chunked bodies are
 * refused: the runtime API does not send them. Errors go to stderr; an
 * error talking to the runtime API ends the program with status 1, which
 * Lambda (and Mayfly) report as `Runtime.ExitError`.
 *
 * The runtime client is also used by ../c-probe/probe.c, which includes
 * this file with ECHO_NO_MAIN defined.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* The name errors are prefixed with. */
#ifndef RT_NAME
#define RT_NAME "c-echo"
#endif

#define RT_READ_BUF (16 * 1024)
#define RT_LINE_MAX (8 * 1024)
#define RT_BODY_MAX (6 * 1024 * 1024)
#define RT_ID_MAX 128

struct runtime {
    int fd;                   /* -1 when not connected */
    struct sockaddr_in addr;  /* the runtime API's address */
    char hostport[64];        /* for the Host header */
    char rbuf[RT_READ_BUF];   /* bytes read but not yet parsed */
    size_t rpos, rlen;
};

/* One HTTP response's head, as far as a runtime needs it. */
struct response {
    int status;
    long content_length;      /* -1: none given */
    int close;                /* Connection: close */
    char request_id[RT_ID_MAX];
};

static char rt_body[RT_BODY_MAX];

static void rt_disconnect(struct runtime *rt)
{
    if (rt->fd >= 0)
        close(rt->fd);
    rt->fd = -1;
    rt->rpos = rt->rlen = 0;
}

static int rt_connect(struct runtime *rt)
{
    rt_disconnect(rt);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, RT_NAME ": socket: %s\n", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&rt->addr, sizeof rt->addr) < 0) {
        fprintf(stderr, RT_NAME ": connect to %s: %s\n", rt->hostport, strerror(errno));
        close(fd);
        return -1;
    }
    int one = 1;
    /* Small requests go out at once; failing to set it only costs time. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    rt->fd = fd;
    return 0;
}

/* Reads AWS_LAMBDA_RUNTIME_API and connects. */
static int runtime_init(struct runtime *rt)
{
    memset(rt, 0, sizeof *rt);
    rt->fd = -1;
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    if (!api || !*api) {
        fprintf(stderr, RT_NAME ": AWS_LAMBDA_RUNTIME_API is not set (this program is a Lambda custom runtime)\n");
        return -1;
    }
    if (strlen(api) >= sizeof rt->hostport) {
        fprintf(stderr, RT_NAME ": AWS_LAMBDA_RUNTIME_API is too long: %s\n", api);
        return -1;
    }
    strcpy(rt->hostport, api);
    char host[64];
    const char *colon = strrchr(api, ':');
    size_t hlen = colon ? (size_t)(colon - api) : 0;
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || hlen == 0 || hlen >= sizeof host || *end != '\0' || port <= 0 || port > 65535) {
        fprintf(stderr, RT_NAME ": AWS_LAMBDA_RUNTIME_API is not ip:port: %s\n", api);
        return -1;
    }
    memcpy(host, api, hlen);
    host[hlen] = '\0';
    rt->addr.sin_family = AF_INET;
    rt->addr.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &rt->addr.sin_addr) != 1) {
        fprintf(stderr, RT_NAME ": AWS_LAMBDA_RUNTIME_API's host is not an IPv4 address: %s\n", host);
        return -1;
    }
    return rt_connect(rt);
}

/* Writes all of one request (head and body) in as few calls as writev
 * allows. */
static int rt_send(struct runtime *rt, const char *head, size_t hlen, const char *body, size_t blen)
{
    struct iovec iov[2] = {
        { .iov_base = (void *)head, .iov_len = hlen },
        { .iov_base = (void *)body, .iov_len = blen },
    };
    struct iovec *v = iov;
    int n = blen ? 2 : 1;
    while (n > 0) {
        ssize_t w = writev(rt->fd, v, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        while (n > 0 && (size_t)w >= v->iov_len) {
            w -= (ssize_t)v->iov_len;
            v++;
            n--;
        }
        if (n > 0) {
            v->iov_base = (char *)v->iov_base + w;
            v->iov_len -= (size_t)w;
        }
    }
    return 0;
}

/* Fills the read buffer; 0 at end of stream, -1 on error. */
static ssize_t rt_fill(struct runtime *rt)
{
    rt->rpos = 0;
    for (;;) {
        ssize_t r = read(rt->fd, rt->rbuf, sizeof rt->rbuf);
        if (r < 0 && errno == EINTR)
            continue;
        rt->rlen = r > 0 ? (size_t)r : 0;
        return r;
    }
}

/* One header line without its CRLF, NUL-terminated. Returns its length,
 * -1 on error or end of stream, -2 if the line is too long. */
static long rt_line(struct runtime *rt, char *line)
{
    size_t len = 0;
    for (;;) {
        if (rt->rpos == rt->rlen && rt_fill(rt) <= 0)
            return -1;
        char c = rt->rbuf[rt->rpos++];
        if (c == '\n') {
            if (len > 0 && line[len - 1] == '\r')
                len--;
            line[len] = '\0';
            return (long)len;
        }
        if (len + 1 >= RT_LINE_MAX)
            return -2;
        line[len++] = c;
    }
}

/* Reads a response's status line and headers. Returns 0, or -1 if the
 * connection ended before the status line (a keep-alive connection the
 * server closed: worth one retry), or -2 on any other error. */
static int rt_head(struct runtime *rt, struct response *resp)
{
    static char line[RT_LINE_MAX];
    memset(resp, 0, sizeof *resp);
    resp->content_length = -1;
    long n = rt_line(rt, line);
    if (n == -1)
        return -1;
    if (n < 0 || sscanf(line, "HTTP/1.%*d %d", &resp->status) != 1) {
        fprintf(stderr, RT_NAME ": not an HTTP response: %.80s\n", line);
        return -2;
    }
    for (;;) {
        n = rt_line(rt, line);
        if (n < 0) {
            fprintf(stderr, RT_NAME ": %s in a response head\n", n == -2 ? "a header line too long" : "the connection ended");
            return -2;
        }
        if (n == 0)
            return 0;
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        char *value = colon + 1;
        while (*value == ' ' || *value == '\t')
            value++;
        if (strcasecmp(line, "Content-Length") == 0) {
            char *end;
            errno = 0;
            resp->content_length = strtol(value, &end, 10);
            if (errno || end == value || resp->content_length < 0) {
                fprintf(stderr, RT_NAME ": bad Content-Length: %s\n", value);
                return -2;
            }
        } else if (strcasecmp(line, "Lambda-Runtime-Aws-Request-Id") == 0) {
            if (strlen(value) >= RT_ID_MAX) {
                fprintf(stderr, RT_NAME ": request id too long\n");
                return -2;
            }
            strcpy(resp->request_id, value);
        } else if (strcasecmp(line, "Connection") == 0) {
            resp->close = strcasecmp(value, "close") == 0;
        } else if (strcasecmp(line, "Transfer-Encoding") == 0) {
            fprintf(stderr, RT_NAME ": Transfer-Encoding %s is not supported\n", value);
            return -2;
        }
    }
}

/* Reads a body of `len` bytes into `buf` (NULL: discard it). */
static int rt_read_body(struct runtime *rt, char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        if (rt->rpos == rt->rlen && rt_fill(rt) <= 0) {
            fprintf(stderr, RT_NAME ": the connection ended inside a body (%zu of %zu bytes)\n", got, len);
            return -1;
        }
        size_t take = rt->rlen - rt->rpos;
        if (take > len - got)
            take = len - got;
        if (buf)
            memcpy(buf + got, rt->rbuf + rt->rpos, take);
        rt->rpos += take;
        got += take;
    }
    return 0;
}

/* Sends a request and reads the response's head; retries once on a fresh
 * connection if the kept-alive one turns out closed. */
static int rt_request(struct runtime *rt, const char *head, size_t hlen, const char *body, size_t blen,
                      struct response *resp)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (rt->fd < 0 && rt_connect(rt) < 0)
            return -1;
        int r = rt_send(rt, head, hlen, body, blen);
        if (r == 0)
            r = rt_head(rt, resp);
        if (r == 0)
            return 0;
        int retry = r == -1;
        rt_disconnect(rt);
        if (!retry)
            return -1;
    }
    fprintf(stderr, RT_NAME ": the runtime API closed the connection twice\n");
    return -1;
}

/* Waits for the next event. Its body is in rt_body (NUL-terminated), its
 * length in *len, its request id in id (RT_ID_MAX bytes). */
static int runtime_next(struct runtime *rt, char *id, size_t *len)
{
    char head[256];
    int hlen = snprintf(head, sizeof head,
                        "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n"
                        "Host: %s\r\n"
                        "\r\n",
                        rt->hostport);
    struct response resp;
    if (rt_request(rt, head, (size_t)hlen, NULL, 0, &resp) < 0)
        return -1;
    if (resp.status != 200) {
        fprintf(stderr, RT_NAME ": GET next answered %d\n", resp.status);
        return -1;
    }
    if (!resp.request_id[0]) {
        fprintf(stderr, RT_NAME ": an event without Lambda-Runtime-Aws-Request-Id\n");
        return -1;
    }
    long clen = resp.content_length < 0 ? 0 : resp.content_length;
    if (clen > RT_BODY_MAX - 1) {
        fprintf(stderr, RT_NAME ": an event of %ld bytes is larger than %d\n", clen, RT_BODY_MAX - 1);
        return -1;
    }
    if (rt_read_body(rt, rt_body, (size_t)clen) < 0)
        return -1;
    rt_body[clen] = '\0';
    if (resp.close)
        rt_disconnect(rt);
    strcpy(id, resp.request_id);
    *len = (size_t)clen;
    return 0;
}

/* Posts a response (kind "response") or an error (kind "error") for the
 * event `id`. A refusal by the API (say, 413 for a payload too large) is
 * reported and is not fatal. */
static int runtime_post(struct runtime *rt, const char *id, const char *kind, const char *body, size_t len)
{
    char head[512];
    int hlen = snprintf(head, sizeof head,
                        "POST /2018-06-01/runtime/invocation/%s/%s HTTP/1.1\r\n"
                        "Host: %s\r\n"
                        "Content-Type: application/json\r\n"
                        "Content-Length: %zu\r\n"
                        "\r\n",
                        id, kind, rt->hostport, len);
    struct response resp;
    if (rt_request(rt, head, (size_t)hlen, body, len, &resp) < 0)
        return -1;
    if (resp.content_length > 0 && rt_read_body(rt, NULL, (size_t)resp.content_length) < 0)
        return -1;
    if (resp.close)
        rt_disconnect(rt);
    if (resp.status < 200 || resp.status > 299)
        fprintf(stderr, RT_NAME ": POST %s for %s answered %d\n", kind, id, resp.status);
    return 0;
}

#ifndef ECHO_NO_MAIN
int main(void)
{
    static struct runtime rt;
    if (runtime_init(&rt) < 0)
        return 1;
    for (;;) {
        char id[RT_ID_MAX];
        size_t len;
        if (runtime_next(&rt, id, &len) < 0)
            return 1;
        if (runtime_post(&rt, id, "response", rt_body, len) < 0)
            return 1;
    }
}
#endif
