/*
 * tessera-launcher: starts the process runner's tasks (and application processes)
 * on request, with posix_spawn, and reports how they end.
 *
 * Why a native program (ADR 17): Node's child_process.spawn forks, and a fork copies the
 * page tables of the process that forks; its cost grows with that process's memory and
 * with the host's memory management. glibc's posix_spawn uses clone(CLONE_VM|CLONE_VFORK):
 * nothing is copied, so a start costs what a shell pays or less, whatever the server holds.
 *
 * Protocol. stdin: requests, each a sequence of NUL-terminated fields:
 *   spawn, id, cwd, log file, status file ("" for none), argc, argv[0..argc-1], envc, env[0..envc-1]
 *   arm, id, after id, cwd, log file, status file, argc, argv..., envc, env...
 *   disarm, id
 * stdout: one line per event
 *   started <id> <pid>
 *   error <id> <stage> <ERRNO> <message>      stage: log | cwd | exec
 *   exit <id> <code|-> <signal number|->
 *   dropped <id> <reason>                     an armed request that will not start
 *
 * An armed request (ADR 18) starts the moment the process of request <after id> exits
 * with code 0, before that exit is even reported: the next task of a chain starts without
 * a round trip through the server. It is dropped (and `dropped` reported) when that
 * process ends otherwise or is not running, when `disarm` asks for it, or when stdin ends
 * (a server that is gone cannot take over what would start). Every arm request ends in
 * exactly one of started, error and dropped.
 *
 * Each task is the leader of a new session (so of its own process group), with stdin
 * from /dev/null and stdout and stderr appended to its log file. When its main process
 * ends, what it left in its group is killed (as a container's end would), its exit
 * status is written to the status file (a temporary file renamed, so a reader never sees
 * half of it) and then reported. When stdin ends (the server stopped or died), the
 * launcher stays until its tasks have ended and their status is written, then exits:
 * a server killed with SIGKILL finds the outcome of what ended meanwhile at its next start.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* posix_spawn_file_actions_addchdir_np (2.29), strerrorname_np and sigabbrev_np (2.32),
 * close_range (2.34): Debian 12, Ubuntu 22.04, RHEL 9 and newer. Elsewhere the build
 * fails and the process runner uses its Node launcher (ADR 17). */
#if !defined(__GLIBC__) || (__GLIBC__ < 2) || (__GLIBC__ == 2 && __GLIBC_MINOR__ < 34)
#error "tessera-launcher needs glibc 2.34 or newer"
#endif

/* A request larger than this is refused (a command line of Linux is at most a few MB). */
#define MAX_REQUEST (64u * 1024u * 1024u)

struct child {
  pid_t pid;
  char *id;
  char *status_path;
  struct child *next;
};

static struct child *children;

/* A request to start once another request's process exits with code 0: its own copy of
 * the request's bytes, and pointers into that copy. */
struct armed {
  char *bytes;
  char *id, *after, *cwd, *log, *status;
  int argc, envc;
  char **argv, **envp;
  struct armed *next;
};

static struct armed *armed;
static int running;
static int input_closed;
static int output_broken;

static char *inbuf;
static size_t inlen, incap;

static void emit(const char *fmt, ...) {
  if (output_broken) return;
  char line[4096];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof line) {
    n = sizeof line - 1;
    line[n - 1] = '\n';
  }
  for (size_t off = 0; off < (size_t)n;) {
    ssize_t w = write(1, line + off, (size_t)n - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      output_broken = 1; /* the server is gone: nothing more to tell it */
      return;
    }
    off += (size_t)w;
  }
}

/* A message on one line: newlines of an error text would break the protocol. */
static const char *oneline(const char *s, char *buf, size_t cap) {
  size_t i = 0;
  for (; s[i] && i + 1 < cap; i++) buf[i] = (s[i] == '\n' || s[i] == '\r') ? ' ' : s[i];
  buf[i] = 0;
  return buf;
}

static void report_error(const char *id, const char *stage, int err, const char *what) {
  char msg[2048], clean[2048];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  const char *name = strerrorname_np(err);
  emit("error %s %s %s %s\n", id, stage, name ? name : "EUNKNOWN", oneline(msg, clean, sizeof clean));
}

static void write_status(const char *path, int code, int sig) {
  char tmp[PATH_MAX + 32];
  if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof tmp) return;
  char body[96];
  /* The signal by its name, as Node gives it ("SIGKILL"): the status readers expect that. */
  const char *abbrev = sigabbrev_np(sig);
  int n = code >= 0 ? snprintf(body, sizeof body, "{\"code\":%d,\"signal\":null}\n", code)
                    : snprintf(body, sizeof body, "{\"code\":null,\"signal\":\"SIG%s\"}\n", abbrev ? abbrev : "UNKNOWN");
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int ok = fd >= 0 && write(fd, body, (size_t)n) == n;
  int e = errno;
  if (fd >= 0 && close(fd) != 0 && ok) {
    ok = 0;
    e = errno;
  }
  if (ok && rename(tmp, path) != 0) {
    ok = 0;
    e = errno;
  }
  if (!ok) {
    if (fd >= 0) unlink(tmp);
    dprintf(2, "tessera launcher: could not record an exit status in %s: %s\n", path, strerror(e));
  }
}

/* The program to execute: argv0 as given when it has a slash, else the first executable
 * file of that name on the PATH of the task's own environment (as execvpe would do, and
 * as Node resolves it), relative PATH entries taken from the task's working directory. */
static int resolve_program(const char *argv0, char *const envp[], int envc, const char *cwd, char *out, size_t cap) {
  if (strchr(argv0, '/')) {
    if (snprintf(out, cap, "%s", argv0) >= (int)cap) return ENAMETOOLONG;
    return 0;
  }
  if (argv0[0] == 0) return ENOENT;
  const char *path = "/usr/local/bin:/usr/bin:/bin";
  for (int i = 0; i < envc; i++) {
    if (strncmp(envp[i], "PATH=", 5) == 0) path = envp[i] + 5;
  }
  int found_noexec = 0;
  for (const char *p = path;; p++) {
    const char *end = strchrnul(p, ':');
    size_t len = (size_t)(end - p);
    int n;
    if (len == 0) n = snprintf(out, cap, "%s/%s", cwd, argv0);
    else if (p[0] == '/') n = snprintf(out, cap, "%.*s/%s", (int)len, p, argv0);
    else n = snprintf(out, cap, "%s/%.*s/%s", cwd, (int)len, p, argv0);
    if (n > 0 && n < (int)cap) {
      struct stat st;
      if (stat(out, &st) == 0 && S_ISREG(st.st_mode)) {
        if (access(out, X_OK) == 0) return 0;
        found_noexec = 1;
      }
    }
    if (*end == 0) break;
    p = end;
  }
  return found_noexec ? EACCES : ENOENT;
}

static void start(const char *id, const char *cwd, const char *log, const char *status, int argc, char **argv, int envc, char **envp) {
  struct stat st;
  int cwd_err = stat(cwd, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
  if (cwd_err != 0) {
    char what[PATH_MAX + 64];
    snprintf(what, sizeof what, "the working directory %s", cwd);
    report_error(id, "cwd", cwd_err, what);
    return;
  }
  int logfd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
  if (logfd < 0) {
    char what[PATH_MAX + 64];
    snprintf(what, sizeof what, "cannot open the log file %s", log);
    report_error(id, "log", errno, what);
    return;
  }
  /* A status file left by an earlier start of the same try (one stopped before the server
   * recorded it) must not be taken for this one's after a restart. */
  if (status[0]) unlink(status);
  char program[PATH_MAX];
  int err = resolve_program(argv[0], envp, envc, cwd, program, sizeof program);
  pid_t pid = -1;
  if (err == 0) {
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, logfd, 1);
    posix_spawn_file_actions_adddup2(&fa, logfd, 2);
    posix_spawn_file_actions_addchdir_np(&fa, cwd);
    posix_spawnattr_init(&attr);
    /* A new session: the task leads its own process group, away from any terminal;
     * no signal blocked, every signal's action the default (the launcher ignores some). */
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    argv[argc] = NULL;
    envp[envc] = NULL;
    err = posix_spawn(&pid, program, &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
  }
  if (err != 0) {
    char what[PATH_MAX + 64];
    snprintf(what, sizeof what, "could not start %s", argv[0]);
    close(logfd);
    report_error(id, "exec", err, what);
    return;
  }
  close(logfd);
  struct child *c = calloc(1, sizeof *c);
  if (!c || !(c->id = strdup(id)) || !(c->status_path = strdup(status))) {
    /* Out of memory: the task runs, but without anyone to record its end; stop it, and say
     * so (its end is reaped unrecorded: no exit event would come). */
    kill(-pid, SIGKILL);
    emit("started %s %ld\n", id, (long)pid);
    emit("exit %s - %d\n", id, SIGKILL);
    return;
  }
  c->pid = pid;
  c->next = children;
  children = c;
  running++;
  emit("started %s %ld\n", id, (long)pid);
}

/* The next NUL-terminated field at *pos of the input, or NULL when it is not all there yet. */
static char *field(size_t *pos) {
  char *nul = memchr(inbuf + *pos, 0, inlen - *pos);
  if (!nul) return NULL;
  char *f = inbuf + *pos;
  *pos = (size_t)(nul - inbuf) + 1;
  return f;
}

static void drop_armed(struct armed *a, const char *reason) {
  emit("dropped %s %s\n", a->id, reason);
  free(a->bytes);
  free(a->argv);
  free(a->envp);
  free(a);
}

/* Keeps an arm request (the bytes [from, to) of the input) until its process to follow ends. */
static void arm(char **f, int argc, char **argv, int envc, char **envp, size_t from, size_t to) {
  int following = 0;
  for (struct child *c = children; c; c = c->next) following |= strcmp(c->id, f[2]) == 0;
  if (!following) {
    /* It has ended (its exit is on its way to the server) or was never started. */
    emit("dropped %s gone\n", f[1]);
    return;
  }
  struct armed *a = calloc(1, sizeof *a);
  char *bytes = malloc(to - from);
  char **av = malloc(((size_t)argc + 1) * sizeof *av);
  char **ev = malloc(((size_t)envc + 1) * sizeof *ev);
  if (!a || !bytes || !av || !ev) {
    free(a);
    free(bytes);
    free(av);
    free(ev);
    emit("dropped %s no-memory\n", f[1]);
    return;
  }
  memcpy(bytes, inbuf + from, to - from);
#define REBASE(p) (bytes + ((p) - (inbuf + from)))
  a->bytes = bytes;
  a->id = REBASE(f[1]);
  a->after = REBASE(f[2]);
  a->cwd = REBASE(f[3]);
  a->log = REBASE(f[4]);
  a->status = REBASE(f[5]);
  for (int i = 0; i < argc; i++) av[i] = REBASE(argv[i]);
  for (int i = 0; i < envc; i++) ev[i] = REBASE(envp[i]);
#undef REBASE
  a->argc = argc;
  a->envc = envc;
  a->argv = av;
  a->envp = ev;
  a->next = armed;
  armed = a;
}

static void disarm(const char *id) {
  for (struct armed **pp = &armed; *pp; pp = &(*pp)->next) {
    if (strcmp((*pp)->id, id) == 0) {
      struct armed *a = *pp;
      *pp = a->next;
      drop_armed(a, "disarmed");
      return;
    }
  }
  /* Not armed (any more): it has started, or was dropped, and that was reported. */
}

/* Starts (code 0) or drops the requests armed to follow the request `id`, whose process ended. */
static void follow(const char *id, int succeeded) {
  struct armed **pp = &armed;
  while (*pp) {
    struct armed *a = *pp;
    if (strcmp(a->after, id) != 0) {
      pp = &a->next;
      continue;
    }
    *pp = a->next;
    if (succeeded) {
      start(a->id, a->cwd, a->log, a->status, a->argc, a->argv, a->envc, a->envp);
      free(a->bytes);
      free(a->argv);
      free(a->envp);
      free(a);
    } else {
      drop_armed(a, "not-succeeded");
    }
  }
}

/* Parses one whole request at the start of the input buffer and acts on it; returns its
 * length, 0 if more input is needed, or -1 (after reporting) if the request is malformed. */
static long take_request(void) {
  size_t pos = 0;
  char *op = field(&pos);
  if (!op) return 0;
  int is_arm = strcmp(op, "arm") == 0;
  if (strcmp(op, "disarm") == 0) {
    char *id = field(&pos);
    if (!id) return 0;
    disarm(id);
    return (long)pos;
  }
  if (!is_arm && strcmp(op, "spawn") != 0) {
    dprintf(2, "tessera launcher: a malformed request (op %.20s): the protocol is out of step, exiting\n", op);
    return -1;
  }
  /* spawn: op, id, cwd, log, status, argc; arm: op, id, after, cwd, log, status, argc */
  int nhead = is_arm ? 7 : 6;
  char *fields[7] = {op};
  for (int i = 1; i < nhead; i++) {
    if (!(fields[i] = field(&pos))) return 0;
  }
  char *end;
  long argc = strtol(fields[nhead - 1], &end, 10);
  if (*end != 0 || argc < 1 || argc > 1000000) {
    dprintf(2, "tessera launcher: a malformed request (op %.20s, argc %.20s): the protocol is out of step, exiting\n", op, fields[nhead - 1]);
    return -1;
  }
  char **argv = malloc(((size_t)argc + 1) * sizeof *argv);
  if (!argv) return -1;
  for (long i = 0; i < argc; i++) {
    if (!(argv[i] = field(&pos))) {
      free(argv);
      return 0;
    }
  }
  char *envc_text = field(&pos);
  if (!envc_text) {
    free(argv);
    return 0;
  }
  long envc = strtol(envc_text, &end, 10);
  if (*end != 0 || envc < 0 || envc > 1000000) {
    free(argv);
    dprintf(2, "tessera launcher: a malformed request (envc): the protocol is out of step, exiting\n");
    return -1;
  }
  char **envp = malloc(((size_t)envc + 1) * sizeof *envp);
  if (!envp) {
    free(argv);
    return -1;
  }
  for (long i = 0; i < envc; i++) {
    if (!(envp[i] = field(&pos))) {
      free(argv);
      free(envp);
      return 0;
    }
  }
  if (is_arm) arm(fields, (int)argc, argv, (int)envc, envp, 0, pos);
  else start(fields[1], fields[2], fields[3], fields[4], (int)argc, argv, (int)envc, envp);
  free(argv);
  free(envp);
  return (long)pos;
}

static int read_input(void) {
  if (incap - inlen < 65536) {
    size_t cap = incap ? incap * 2 : 131072;
    if (cap > MAX_REQUEST * 2) {
      dprintf(2, "tessera launcher: a request larger than %u bytes, exiting\n", MAX_REQUEST);
      return -1;
    }
    char *b = realloc(inbuf, cap);
    if (!b) return -1;
    inbuf = b;
    incap = cap;
  }
  ssize_t n = read(0, inbuf + inlen, incap - inlen);
  if (n < 0) return errno == EINTR || errno == EAGAIN ? 1 : -1;
  if (n == 0) return 0;
  inlen += (size_t)n;
  for (;;) {
    long used = take_request();
    if (used < 0) return -1;
    if (used == 0) break;
    memmove(inbuf, inbuf + used, inlen - (size_t)used);
    inlen -= (size_t)used;
  }
  return 1;
}

/* Collects every child that has ended. The group is killed while the ended leader is
 * still a zombie (so its pid, the group's id, cannot have been reused), then it is reaped. */
static void reap(void) {
  for (;;) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) return;
    pid_t pid = info.si_pid;
    kill(-pid, SIGKILL);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    struct child **pp = &children;
    while (*pp && (*pp)->pid != pid) pp = &(*pp)->next;
    struct child *c = *pp;
    if (!c) continue;
    *pp = c->next;
    running--;
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    int sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    /* What follows it starts first: the status file and the report are not on the chain's path. */
    if (armed) follow(c->id, code == 0);
    if (c->status_path[0]) write_status(c->status_path, code, sig);
    if (code >= 0) emit("exit %s %d -\n", c->id, code);
    else emit("exit %s - %d\n", c->id, sig);
    free(c->id);
    free(c->status_path);
    free(c);
  }
}

int main(void) {
  /* Nothing of the server's but the three standard streams. */
  close_range(3, ~0U, 0);
  /* The server decides when tasks stop: a Ctrl-C or hang-up meant for it must not end the
   * launcher, which would leave its tasks without anyone to record their end. Tasks get
   * every signal's default action back (POSIX_SPAWN_SETSIGDEF). */
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) {
    dprintf(2, "tessera launcher: signalfd: %s\n", strerror(errno));
    return 1;
  }
  fcntl(0, F_SETFD, FD_CLOEXEC);
  fcntl(1, F_SETFD, FD_CLOEXEC);
  fcntl(2, F_SETFD, FD_CLOEXEC);
  for (;;) {
    if (input_closed && running == 0) return 0;
    struct pollfd p[2] = {{.fd = sfd, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
    int n = poll(p, input_closed ? 1 : 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      dprintf(2, "tessera launcher: poll: %s\n", strerror(errno));
      return 1;
    }
    /* Input first: a disarm, or the end of input (the server is gone), must be seen
     * before a child's end starts what was armed to follow it. */
    if (!input_closed && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      int r = read_input();
      if (r <= 0) {
        /* End of input (or a protocol error): take no more requests, start nothing armed,
         * see the running ones through. */
        input_closed = 1;
        while (armed) {
          struct armed *a = armed;
          armed = a->next;
          drop_armed(a, "input-closed");
        }
      }
    }
    if (p[0].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
      }
      reap();
    }
  }
}
