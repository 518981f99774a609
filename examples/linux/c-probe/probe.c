/*
 * c-probe: a C test program for Mayfly's Linux personality, used by the
 * end-to-end tests, as a plain program (`mayfly exec c-probe MODE ...`) or
 * as a function's bootstrap.
 *
 *   musl-gcc -static -O2 -o c-probe probe.c
 *
 * The mode is argv[1] or, when there is none, the environment variable
 * PROBE_MODE:
 *
 *   hello     prints "hello from C" to stdout and "to stderr" to stderr
 *   enosys    makes system calls the kernel does not implement,
 *             io_uring_setup(1, NULL) twice and the raw number 500,
 *             printing "io_uring_setup: -1 ENOSYS", "io_uring_setup
 *             again: -1 ENOSYS" and "syscall 500: -1 ENOSYS" (whatever
 *             each answered), then "still running" (the kernel names an
 *             unsupported syscall once however often it is made)
 *   segv      prints "segv: writing through NULL" and writes through a
 *             NULL pointer (SIGSEGV)
 *   ill       prints "ill: executing ud2" and executes ud2 (SIGILL)
 *   exit      prints "exit: N" and exits with status N: argv[2], else
 *             PROBE_STATUS, else 0
 *   random    prints "at_random HEX", "getrandom HEX" and "urandom HEX":
 *             the 16 AT_RANDOM bytes (getauxval), 16 bytes of getrandom()
 *             and 16 bytes read from /dev/urandom
 *   tmpfill   writes 1 MiB chunks to /tmp/fill until a write fails, prints
 *             "wrote BYTES ERRNO" (e.g. "wrote 536870912 ENOSPC"), then
 *             removes /tmp/fill. argv[2] or PROBE_LIMIT_MB, if given, stops
 *             it after that many MiB ("wrote 3145728 limit"), for running
 *             it outside a VM
 *   env       prints the environment, one NAME=VALUE a line
 *   eatmem    mallocs 1 MiB at a time and touches every page of it,
 *             forever (printing "eatmem: N MiB" to stderr every 64 MiB),
 *             until the VM's memory runs out; if malloc fails it prints
 *             "eatmem: malloc failed after N MiB" and exits with 1
 *   sleep     sleeps argv[2] or PROBE_STATUS seconds, then prints "slept N"
 *   udp       `udp HOST PORT TEXT`: resolves HOST with getaddrinfo (musl's
 *             resolver: /etc/hosts, then the DNS over UDP), prints
 *             "resolved HOST to ADDRESS" (or "resolve HOST: WHY" and exits
 *             with 1), sends TEXT as one datagram on a connected UDP
 *             socket and prints "udp reply: TEXT" for the answer, or
 *             "udp: no reply" after 3 s
 *   udpflood  `udpflood ADDRESS PORT COUNT`: COUNT UDP sockets each send one
 *             datagram to ADDRESS:PORT (COUNT flows); prints "replies N",
 *             how many were answered within 2 s
 *   dns       `dns NAME`: asks the DNS (res_query, never /etc/hosts) for
 *             NAME's A records: "dns NAME: rcode R answers N [last
 *             ADDRESS]", or "dns NAME: no answer (h_errno H)"
 *
 * As a function (AWS_LAMBDA_RUNTIME_API set): the mode runs once, before
 * the first event. The modes that end the process (segv, ill, exit,
 * eatmem) end it
 * there, before any event is answered, which is what the tests of a fault
 * or an early exit want. Otherwise the probe then answers every event with
 * {"mode":"MODE","output":"what the mode printed to stdout"}; with no mode
 * at all it answers each event with the event itself, as c-echo does.
 * Everything it prints also goes to stdout or stderr, that is to the
 * function's log.
 */
#define ECHO_NO_MAIN
#define RT_NAME "c-probe"
#include "../c-echo/echo.c"

#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/auxv.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <netdb.h>
#include <poll.h>
#include <resolv.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <sys/socket.h>

#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif

/* What a mode printed to stdout, kept for the function's answer. */
static char captured[64 * 1024];
static size_t captured_len;

/* printf to stdout that also keeps the text for the function's answer. */
__attribute__((format(printf, 1, 2))) static void out(const char *fmt, ...)
{
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line)
        n = sizeof line - 1;
    fputs(line, stdout);
    if (captured_len + (size_t)n < sizeof captured) {
        memcpy(captured + captured_len, line, (size_t)n);
        captured_len += (size_t)n;
    }
}

/* musl has no strerrorname_np: the names the tests look for. */
static const char *errno_name(int e)
{
    switch (e) {
    case 0: return "OK";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case ENXIO: return "ENXIO";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EEXIST: return "EEXIST";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case EMFILE: return "EMFILE";
    case EFBIG: return "EFBIG";
    case ENOSPC: return "ENOSPC";
    case EROFS: return "EROFS";
    case ENOSYS: return "ENOSYS";
    case EDQUOT: return "EDQUOT";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    }
    static char other[16];
    snprintf(other, sizeof other, "E%d", e);
    return other;
}

/* An integer from argv[2], else from the environment variable, else dflt. */
static long arg_or_env(int argc, char **argv, const char *var, long dflt)
{
    const char *s = argc > 2 ? argv[2] : getenv(var);
    return s && *s ? strtol(s, NULL, 10) : dflt;
}

static void hex(const char *label, const unsigned char *bytes, size_t n)
{
    char text[2 * 64 + 1];
    for (size_t i = 0; i < n && i < 64; i++)
        snprintf(text + 2 * i, 3, "%02x", bytes[i]);
    text[2 * (n < 64 ? n : 64)] = '\0';
    out("%s %s\n", label, text);
}

static int mode_random(void)
{
    int ok = 0;
    const unsigned char *at_random = (const unsigned char *)getauxval(AT_RANDOM);
    if (at_random) {
        hex("at_random", at_random, 16);
    } else {
        out("at_random missing\n");
        ok = -1;
    }
    unsigned char buf[16];
    ssize_t n = getrandom(buf, sizeof buf, 0);
    if (n == (ssize_t)sizeof buf) {
        hex("getrandom", buf, sizeof buf);
    } else {
        out("getrandom %zd %s\n", n, errno_name(n < 0 ? errno : 0));
        ok = -1;
    }
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    n = fd < 0 ? -1 : read(fd, buf, sizeof buf);
    if (n == (ssize_t)sizeof buf) {
        hex("urandom", buf, sizeof buf);
    } else {
        out("urandom %zd %s\n", n, errno_name(n < 0 ? errno : 0));
        ok = -1;
    }
    if (fd >= 0)
        close(fd);
    return ok;
}

static int mode_udp(const char *host, const char *port, const char *text)
{
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_DGRAM };
    struct addrinfo *found = NULL;
    int e = getaddrinfo(host, port, &hints, &found);
    if (e != 0) {
        out("resolve %s: %s\n", host, gai_strerror(e));
        return -1;
    }
    char address[INET_ADDRSTRLEN];
    struct sockaddr_in *to = (struct sockaddr_in *)found->ai_addr;
    inet_ntop(AF_INET, &to->sin_addr, address, sizeof address);
    out("resolved %s to %s\n", host, address);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || connect(fd, found->ai_addr, found->ai_addrlen) < 0) {
        out("udp: %s\n", errno_name(errno));
        return -1;
    }
    freeaddrinfo(found);
    if (send(fd, text, strlen(text), 0) < 0) {
        out("udp send: %s\n", errno_name(errno));
        return -1;
    }
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    char reply[2048];
    if (poll(&pfd, 1, 3000) == 1) {
        ssize_t n = recv(fd, reply, sizeof reply - 1, 0);
        if (n >= 0) {
            reply[n] = 0;
            out("udp reply: %s\n", reply);
            close(fd);
            return 0;
        }
    }
    out("udp: no reply\n");
    close(fd);
    return 0;
}

static int mode_udpflood(const char *address, const char *port, long count)
{
    static struct pollfd fds[1024];
    if (count > 1024)
        count = 1024;
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port)) };
    inet_pton(AF_INET, address, &to.sin_addr);
    for (long i = 0; i < count; i++) {
        fds[i].fd = socket(AF_INET, SOCK_DGRAM, 0);
        fds[i].events = POLLIN;
        if (fds[i].fd < 0) {
            out("udpflood socket: %s\n", errno_name(errno));
            return -1;
        }
        sendto(fds[i].fd, "flood", 5, 0, (struct sockaddr *)&to, sizeof to);
    }
    long replies = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left = 2000 - ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000);
        if (left <= 0 || poll(fds, (nfds_t)count, (int)left) <= 0)
            break;
        char buf[64];
        for (long i = 0; i < count; i++) {
            if (fds[i].revents & POLLIN && recv(fds[i].fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
                replies++;
        }
    }
    out("replies %ld\n", replies);
    return 0;
}

static int mode_dns(const char *name)
{
    unsigned char answer[512];
    int n = res_query(name, C_IN, T_A, answer, sizeof answer);
    if (n < 12) {
        out("dns %s: no answer (h_errno %d)\n", name, h_errno);
        return 0;
    }
    int count = answer[6] << 8 | answer[7];
    out("dns %s: rcode %d answers %d", name, answer[3] & 15, count);
    if (count > 0)
        out(" last %d.%d.%d.%d", answer[n - 4], answer[n - 3], answer[n - 2], answer[n - 1]);
    out("\n");
    return 0;
}

static int mode_tmpfill(long limit_mb)
{
    static char chunk[1024 * 1024];
    /* Not zeros, so that no layer can keep the file sparse. */
    for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = (char)(i * 31 + 7);
    int fd = open("/tmp/fill", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        out("open /tmp/fill: %s\n", errno_name(errno));
        return -1;
    }
    unsigned long long total = 0;
    const char *why = "limit";
    for (long mb = 0; limit_mb <= 0 || mb < limit_mb; mb++) {
        size_t done = 0;
        while (done < sizeof chunk) {
            ssize_t w = write(fd, chunk + done, sizeof chunk - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                why = w < 0 ? errno_name(errno) : "zero-write";
                goto stop;
            }
            done += (size_t)w;
            total += (unsigned long long)w;
        }
    }
stop:
    out("wrote %llu %s\n", total, why);
    close(fd);
    if (unlink("/tmp/fill") < 0)
        fprintf(stderr, "c-probe: unlink /tmp/fill: %s\n", errno_name(errno));
    return 0;
}

/* Never returns: memory runs out first (or malloc fails, status 1). */
static void mode_eatmem(void)
{
    const size_t chunk = 1024 * 1024;
    for (unsigned long mb = 1;; mb++) {
        volatile char *p = malloc(chunk);
        if (!p) {
            fprintf(stderr, "eatmem: malloc failed after %lu MiB\n", mb - 1);
            exit(1);
        }
        for (size_t i = 0; i < chunk; i += 4096)
            p[i] = (char)mb;
        if (mb % 64 == 0)
            fprintf(stderr, "eatmem: %lu MiB\n", mb);
    }
}

/* Runs one mode; returns -1 for an unknown mode. The modes that end the
 * process do not return. */
static int run_mode(const char *mode, int argc, char **argv)
{
    if (strcmp(mode, "hello") == 0) {
        out("hello from C\n");
        fflush(stdout);
        fprintf(stderr, "to stderr\n");
    } else if (strcmp(mode, "enosys") == 0) {
        long r = syscall(SYS_io_uring_setup, 1, 0);
        out("io_uring_setup: %ld %s\n", r, errno_name(r < 0 ? errno : 0));
        r = syscall(SYS_io_uring_setup, 1, 0);
        out("io_uring_setup again: %ld %s\n", r, errno_name(r < 0 ? errno : 0));
        r = syscall(500);
        out("syscall 500: %ld %s\n", r, errno_name(r < 0 ? errno : 0));
        out("still running\n");
    } else if (strcmp(mode, "segv") == 0) {
        out("segv: writing through NULL\n");
        fflush(stdout);
        /* The pointer is read from a volatile, so the compiler cannot see
         * the NULL (and turn the store into a trap of its own), and it
         * points to volatile, so the store cannot be dropped either. */
        volatile int *volatile p = NULL;
        *p = 1;
        fprintf(stderr, "c-probe: still alive after writing through NULL\n");
        exit(1);
    } else if (strcmp(mode, "ill") == 0) {
        out("ill: executing ud2\n");
        fflush(stdout);
        __asm__ volatile("ud2");
        fprintf(stderr, "c-probe: still alive after ud2\n");
        exit(1);
    } else if (strcmp(mode, "exit") == 0) {
        long status = arg_or_env(argc, argv, "PROBE_STATUS", 0);
        out("exit: %ld\n", status);
        fflush(stdout);
        exit((int)status);
    } else if (strcmp(mode, "random") == 0) {
        if (mode_random() < 0)
            return 1;
    } else if (strcmp(mode, "tmpfill") == 0) {
        if (mode_tmpfill(arg_or_env(argc, argv, "PROBE_LIMIT_MB", 0)) < 0)
            return 1;
    } else if (strcmp(mode, "eatmem") == 0) {
        out("eatmem: touching 1 MiB at a time\n");
        fflush(stdout);
        mode_eatmem();
    } else if (strcmp(mode, "env") == 0) {
        extern char **environ;
        for (char **e = environ; *e; e++)
            out("%s\n", *e);
    } else if (strcmp(mode, "sleep") == 0) {
        long seconds = arg_or_env(argc, argv, "PROBE_STATUS", 1);
        struct timespec ts = { .tv_sec = seconds, .tv_nsec = 0 };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
        out("slept %ld\n", seconds);
    } else if (strcmp(mode, "udp") == 0 && argc > 4) {
        if (mode_udp(argv[2], argv[3], argv[4]) < 0)
            return 1;
    } else if (strcmp(mode, "udpflood") == 0 && argc > 4) {
        if (mode_udpflood(argv[2], argv[3], atol(argv[4])) < 0)
            return 1;
    } else if (strcmp(mode, "dns") == 0 && argc > 2) {
        mode_dns(argv[2]);
    } else {
        fprintf(stderr, "c-probe: unknown mode `%s` (hello, enosys, segv, ill, exit, random, tmpfill, eatmem, env, sleep, udp HOST PORT TEXT, udpflood ADDRESS PORT COUNT, dns NAME)\n",
                mode);
        return -1;
    }
    fflush(stdout);
    return 0;
}

/* captured as a JSON string's contents. */
static size_t json_escape(char *dst, size_t cap, const char *src, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 7 < cap; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '"' || c == '\\') {
            dst[n++] = '\\';
            dst[n++] = (char)c;
        } else if (c == '\n') {
            dst[n++] = '\\';
            dst[n++] = 'n';
        } else if (c < 0x20) {
            n += (size_t)snprintf(dst + n, cap - n, "\\u%04x", c);
        } else {
            dst[n++] = (char)c;
        }
    }
    return n;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : getenv("PROBE_MODE");
    int as_function = getenv("AWS_LAMBDA_RUNTIME_API") != NULL;
    if (!mode || !*mode) {
        if (!as_function) {
            fprintf(stderr, "usage: c-probe hello|enosys|segv|ill|exit [N]|random|tmpfill [MB]|eatmem|env|sleep [S]\n"
                            "       (or PROBE_MODE=...; as a function with no mode it is an echo)\n");
            return 2;
        }
        mode = NULL;
    }
    int status = mode ? run_mode(mode, argc, argv) : 0;
    if (status < 0)
        return 2;
    if (!as_function)
        return status;

    static char answer[sizeof captured * 6 + 64];
    size_t alen = 0;
    if (mode) {
        alen = (size_t)snprintf(answer, sizeof answer, "{\"mode\":\"%s\",\"output\":\"", mode);
        alen += json_escape(answer + alen, sizeof answer - alen - 3, captured, captured_len);
        memcpy(answer + alen, "\"}", 3);
        alen += 2;
    }
    static struct runtime rt;
    if (runtime_init(&rt) < 0)
        return 1;
    for (;;) {
        char id[RT_ID_MAX];
        size_t len;
        if (runtime_next(&rt, id, &len) < 0)
            return 1;
        const char *body = mode ? answer : rt_body;
        if (runtime_post(&rt, id, "response", body, mode ? alen : len) < 0)
            return 1;
    }
}
