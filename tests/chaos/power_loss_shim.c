/*
 * Power-loss shim for chaos tests: an LD_PRELOAD library that keeps an undo journal of every
 * write to the regular files under one folder (a node's data folder), so that after a SIGKILL
 * the harness can roll each file back to its bytes as they stood at its last completed fsync
 * (tests/chaos/power_loss.ts reads the journals; this file only writes them).
 *
 * Environment: ASPEN_POWER_LOSS_ROOT (absolute folder whose files are tracked) and
 * ASPEN_POWER_LOSS_JOURNAL (folder for the journals, outside the root). Without both, every call
 * passes straight through.
 *
 * One journal per tracked inode, named "<dev>.<ino>", made of records (header: kind byte, 7 pad
 * bytes, four little-endian u64 fields a, b, c, length; then `length` bytes):
 *   'B' a = logical position of the journal's first byte (journals restart after a full sync,
 *       and every record after the header is undone unless an 'S' record says otherwise);
 *   'W' a = offset, b = file size before the write, length = old bytes of [offset, offset+count)
 *       that existed (below b);
 *   'T' a = new size, b = old size, length = old bytes from a up to b when shrinking;
 *   'S' a = logical cutoff: every record before it is durable (an fsync that started after it
 *       completed).
 * The undo record is appended (to the page cache, which a SIGKILL keeps) before the write it
 * undoes, under one mutex, so a write that reached the file always has its record. An fsync
 * takes its cutoff when it starts and marks it when it succeeds: writes racing with the fsync
 * on other threads stay undoable. Files are identified by inode, so a rename keeps its journal
 * and a fresh file created on a reused inode starts a fresh one.
 *
 * Model: only file contents are lost; directory entries (create, rename, unlink) are taken as
 * durable at once. SQLite's -shm files are not tracked (the harness deletes them; SQLite
 * rebuilds them). A shared writable mmap of a tracked file cannot be journaled and is reported
 * on stderr.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define FDS_MAX 65536
#define INODES_MAX 1024
#define COPY_CHUNK_BYTES 65536
#define COMPACT_BYTES (8u << 20)

typedef struct {
  uint8_t kind;
  uint8_t pad[7];
  uint64_t a, b, c, length;
} Record;

typedef struct {
  int used;
  dev_t dev;
  ino_t ino;
  int refs;
  int journal;
  int reader;
  uint64_t base;
  uint64_t length;
  uint64_t synced;
} Inode;

static Inode inodes[INODES_MAX];
static int fd_slot[FDS_MAX]; /* inode slot + 1; 0 for an untracked fd */
static int fd_append[FDS_MAX];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char root[PATH_MAX];
static size_t root_length;
static char journal_dir[PATH_MAX];
static int is_enabled = -1;

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_close)(int);
static int (*real_dup)(int);
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);
static int (*real_fcntl)(int, int, ...);
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);
static void *(*real_mmap64)(void *, size_t, int, int, int, off_t);

static void die(const char *what) {
  char text[512];
  int length = snprintf(text, sizeof text, "power-loss shim: %s: %s\n", what, strerror(errno));
  if (real_write != NULL && length > 0) real_write(2, text, (size_t)length);
  abort();
}

static void resolve(void) {
  if (is_enabled >= 0) return;
  real_open = dlsym(RTLD_NEXT, "open");
  real_open64 = dlsym(RTLD_NEXT, "open64");
  real_openat = dlsym(RTLD_NEXT, "openat");
  real_openat64 = dlsym(RTLD_NEXT, "openat64");
  real_write = dlsym(RTLD_NEXT, "write");
  real_writev = dlsym(RTLD_NEXT, "writev");
  real_pwrite = dlsym(RTLD_NEXT, "pwrite");
  real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
  real_ftruncate = dlsym(RTLD_NEXT, "ftruncate");
  real_ftruncate64 = dlsym(RTLD_NEXT, "ftruncate64");
  real_fsync = dlsym(RTLD_NEXT, "fsync");
  real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
  real_close = dlsym(RTLD_NEXT, "close");
  real_dup = dlsym(RTLD_NEXT, "dup");
  real_dup2 = dlsym(RTLD_NEXT, "dup2");
  real_dup3 = dlsym(RTLD_NEXT, "dup3");
  real_fcntl = dlsym(RTLD_NEXT, "fcntl");
  real_mmap = dlsym(RTLD_NEXT, "mmap");
  real_mmap64 = dlsym(RTLD_NEXT, "mmap64");
  const char *tracked = getenv("ASPEN_POWER_LOSS_ROOT");
  const char *journals = getenv("ASPEN_POWER_LOSS_JOURNAL");
  int has_both = tracked != NULL && journals != NULL && tracked[0] == '/';
  if (has_both && strlen(tracked) < PATH_MAX - 1 && strlen(journals) < PATH_MAX - 64) {
    strcpy(root, tracked);
    root_length = strlen(root);
    while (root_length > 1 && root[root_length - 1] == '/') root[--root_length] = '\0';
    strcpy(journal_dir, journals);
    __atomic_store_n(&is_enabled, 1, __ATOMIC_RELEASE);
  } else {
    __atomic_store_n(&is_enabled, 0, __ATOMIC_RELEASE);
  }
}

__attribute__((constructor)) static void initialize(void) { resolve(); }

static int slot_of(int fd) {
  if (fd < 0 || fd >= FDS_MAX) return -1;
  return __atomic_load_n(&fd_slot[fd], __ATOMIC_ACQUIRE) - 1;
}

static void write_all(int fd, const void *bytes, size_t count) {
  const char *cursor = bytes;
  while (count > 0) {
    ssize_t written = real_write(fd, cursor, count);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) die("cannot write a journal");
    cursor += written;
    count -= (size_t)written;
  }
}

static void read_all(int fd, void *bytes, size_t count, uint64_t offset) {
  char *cursor = bytes;
  while (count > 0) {
    ssize_t got = pread(fd, cursor, count, (off_t)offset);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) die("cannot read old bytes");
    cursor += got;
    count -= (size_t)got;
    offset += (uint64_t)got;
  }
}

/* Appends one record whose payload is `count` old bytes of the file at `offset`. */
static void append_record(Inode *inode, Record record, uint64_t offset) {
  write_all(inode->journal, &record, sizeof record);
  inode->length += sizeof record;
  uint64_t left = record.length;
  char chunk[COPY_CHUNK_BYTES];
  while (left > 0) {
    size_t count = left < sizeof chunk ? (size_t)left : sizeof chunk;
    read_all(inode->reader, chunk, count, offset);
    write_all(inode->journal, chunk, count);
    inode->length += count;
    offset += count;
    left -= count;
  }
}

static void journal_path(char *path, dev_t dev, ino_t ino, const char *suffix) {
  snprintf(path, PATH_MAX, "%s/%llu.%llu%s", journal_dir, (unsigned long long)dev,
           (unsigned long long)ino, suffix);
}

/* Starts an empty journal whose first byte is at logical position `base`. */
static void restart_journal(Inode *inode, uint64_t base) {
  if (real_ftruncate(inode->journal, 0) != 0) die("cannot truncate a journal");
  Record header = {.kind = 'B', .a = base};
  write_all(inode->journal, &header, sizeof header);
  inode->base = base;
  inode->length = sizeof header;
  inode->synced = base;
}

/* Opens (or continues) the journal of a tracked inode; `fd` is an open fd of the file. */
static void open_journal(Inode *inode, int fd, int is_new_file) {
  char path[PATH_MAX];
  journal_path(path, inode->dev, inode->ino, "");
  inode->journal = real_open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (inode->journal < 0) die("cannot open a journal");
  char self[64];
  snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
  inode->reader = real_open(self, O_RDONLY | O_CLOEXEC);
  if (inode->reader < 0) die("cannot reopen a tracked file for reading");
  struct stat status;
  if (fstat(inode->journal, &status) != 0) die("cannot stat a journal");
  if (is_new_file || status.st_size < (off_t)sizeof(Record)) {
    restart_journal(inode, 0);
    return;
  }
  Record header;
  read_all(inode->journal, &header, sizeof header, 0);
  inode->base = header.a;
  inode->length = (uint64_t)status.st_size;
  inode->synced = header.a;
}

/* The slot of an inode, taking one reference; opens its journal on the first. Under lock. */
static int acquire(int fd, const struct stat *status, int is_new_file) {
  int free_slot = -1;
  for (int i = 0; i < INODES_MAX; i++) {
    if (!inodes[i].used) {
      if (free_slot < 0) free_slot = i;
    } else if (inodes[i].dev == status->st_dev && inodes[i].ino == status->st_ino) {
      inodes[i].refs++;
      if (is_new_file) restart_journal(&inodes[i], 0);
      return i;
    }
  }
  if (free_slot < 0) {
    errno = EMFILE;
    die("too many tracked inodes");
  }
  Inode *inode = &inodes[free_slot];
  memset(inode, 0, sizeof *inode);
  inode->used = 1;
  inode->dev = status->st_dev;
  inode->ino = status->st_ino;
  inode->refs = 1;
  open_journal(inode, fd, is_new_file);
  return free_slot;
}

static void release(int slot) {
  Inode *inode = &inodes[slot];
  if (--inode->refs > 0) return;
  real_close(inode->journal);
  real_close(inode->reader);
  inode->used = 0;
}

static void attach(int fd, int slot, int is_append) {
  fd_append[fd] = is_append;
  __atomic_store_n(&fd_slot[fd], slot + 1, __ATOMIC_RELEASE);
}

static void detach(int fd) {
  int slot = slot_of(fd);
  if (slot < 0) return;
  __atomic_store_n(&fd_slot[fd], 0, __ATOMIC_RELEASE);
  release(slot);
}

/* The absolute path of `path` opened relative to `dirfd`, or 0 when it cannot be told. */
static int absolute(int dirfd, const char *path, char *out) {
  if (path[0] == '/') return snprintf(out, PATH_MAX, "%s", path) < PATH_MAX;
  char base[PATH_MAX];
  if (dirfd == AT_FDCWD) {
    if (getcwd(base, sizeof base) == NULL) return 0;
  } else {
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", dirfd);
    ssize_t length = readlink(self, base, sizeof base - 1);
    if (length <= 0) return 0;
    base[length] = '\0';
  }
  return snprintf(out, PATH_MAX, "%s/%s", base, path) < PATH_MAX;
}

static int is_tracked_path(const char *path) {
  size_t length = strlen(path);
  if (length <= root_length + 1) return 0;
  if (strncmp(path, root, root_length) != 0 || path[root_length] != '/') return 0;
  return !(length >= 4 && strcmp(path + length - 4, "-shm") == 0);
}

/* Saves the whole old content of an existing file that an O_TRUNC open is about to empty. */
static void journal_truncating_open(const char *path) {
  int fd = real_open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat status;
  if (fstat(fd, &status) == 0 && S_ISREG(status.st_mode) && status.st_size > 0) {
    int slot = acquire(fd, &status, 0);
    Record record = {.kind = 'T', .a = 0, .b = (uint64_t)status.st_size};
    record.length = (uint64_t)status.st_size;
    append_record(&inodes[slot], record, 0);
    release(slot);
  }
  real_close(fd);
}

typedef int (*OpenCall)(int dirfd, const char *path, int flags, mode_t mode);

static int open_tracked(int dirfd, const char *path, int flags, mode_t mode, OpenCall call) {
  char full[PATH_MAX];
  if (!__atomic_load_n(&is_enabled, __ATOMIC_ACQUIRE) || path == NULL ||
      !absolute(dirfd, path, full) || !is_tracked_path(full)) {
    return call(dirfd, path, flags, mode);
  }
  pthread_mutex_lock(&lock);
  struct stat before;
  int existed = stat(full, &before) == 0;
  if (existed && (flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY) {
    journal_truncating_open(full);
  }
  int fd = call(dirfd, path, flags, mode);
  int saved = errno;
  struct stat status;
  if (fd >= 0 && fd < FDS_MAX && fstat(fd, &status) == 0 && S_ISREG(status.st_mode)) {
    int slot = acquire(fd, &status, !existed);
    attach(fd, slot, (flags & O_APPEND) != 0);
  }
  pthread_mutex_unlock(&lock);
  errno = saved;
  return fd;
}

static int call_open(int dirfd, const char *path, int flags, mode_t mode) {
  (void)dirfd;
  return real_open(path, flags, mode);
}
static int call_open64(int dirfd, const char *path, int flags, mode_t mode) {
  (void)dirfd;
  return real_open64(path, flags, mode);
}
static int call_openat(int dirfd, const char *path, int flags, mode_t mode) {
  return real_openat(dirfd, path, flags, mode);
}
static int call_openat64(int dirfd, const char *path, int flags, mode_t mode) {
  return real_openat64(dirfd, path, flags, mode);
}

static mode_t mode_argument(int flags, va_list arguments) {
  if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) return va_arg(arguments, mode_t);
  return 0;
}

int open(const char *path, int flags, ...) {
  resolve();
  va_list arguments;
  va_start(arguments, flags);
  mode_t mode = mode_argument(flags, arguments);
  va_end(arguments);
  return open_tracked(AT_FDCWD, path, flags, mode, call_open);
}

int open64(const char *path, int flags, ...) {
  resolve();
  va_list arguments;
  va_start(arguments, flags);
  mode_t mode = mode_argument(flags, arguments);
  va_end(arguments);
  return open_tracked(AT_FDCWD, path, flags, mode, call_open64);
}

int openat(int dirfd, const char *path, int flags, ...) {
  resolve();
  va_list arguments;
  va_start(arguments, flags);
  mode_t mode = mode_argument(flags, arguments);
  va_end(arguments);
  return open_tracked(dirfd, path, flags, mode, call_openat);
}

int openat64(int dirfd, const char *path, int flags, ...) {
  resolve();
  va_list arguments;
  va_start(arguments, flags);
  mode_t mode = mode_argument(flags, arguments);
  va_end(arguments);
  return open_tracked(dirfd, path, flags, mode, call_openat64);
}

static uint64_t file_size(int fd) {
  struct stat status;
  if (fstat(fd, &status) != 0) die("cannot stat a tracked file");
  return (uint64_t)status.st_size;
}

/* Journals the old bytes of [offset, offset + count) of the file behind `fd`. Under lock. */
static void journal_write(int fd, int slot, uint64_t offset, size_t count) {
  uint64_t size = file_size(fd);
  uint64_t end = offset + count < size ? offset + count : size;
  Record record = {.kind = 'W', .a = offset, .b = size};
  record.length = end > offset ? end - offset : 0;
  append_record(&inodes[slot], record, offset);
}

static uint64_t current_offset(int fd) {
  if (fd_append[fd]) return file_size(fd);
  off_t offset = lseek(fd, 0, SEEK_CUR);
  if (offset < 0) die("cannot tell a tracked file's offset");
  return (uint64_t)offset;
}

ssize_t write(int fd, const void *bytes, size_t count) {
  resolve();
  int slot = slot_of(fd);
  if (slot < 0 || count == 0) return real_write(fd, bytes, count);
  pthread_mutex_lock(&lock);
  journal_write(fd, slot, current_offset(fd), count);
  ssize_t written = real_write(fd, bytes, count);
  int saved = errno;
  pthread_mutex_unlock(&lock);
  errno = saved;
  return written;
}

ssize_t writev(int fd, const struct iovec *vector, int count) {
  resolve();
  int slot = slot_of(fd);
  if (slot < 0) return real_writev(fd, vector, count);
  size_t total = 0;
  for (int i = 0; i < count; i++) total += vector[i].iov_len;
  pthread_mutex_lock(&lock);
  if (total > 0) journal_write(fd, slot, current_offset(fd), total);
  ssize_t written = real_writev(fd, vector, count);
  int saved = errno;
  pthread_mutex_unlock(&lock);
  errno = saved;
  return written;
}

static ssize_t pwrite_tracked(int fd, const void *bytes, size_t count, off_t offset,
                              ssize_t (*call)(int, const void *, size_t, off_t)) {
  int slot = slot_of(fd);
  if (slot < 0 || count == 0 || offset < 0) return call(fd, bytes, count, offset);
  pthread_mutex_lock(&lock);
  journal_write(fd, slot, (uint64_t)offset, count);
  ssize_t written = call(fd, bytes, count, offset);
  int saved = errno;
  pthread_mutex_unlock(&lock);
  errno = saved;
  return written;
}

ssize_t pwrite(int fd, const void *bytes, size_t count, off_t offset) {
  resolve();
  return pwrite_tracked(fd, bytes, count, offset, real_pwrite);
}

ssize_t pwrite64(int fd, const void *bytes, size_t count, off_t offset) {
  resolve();
  return pwrite_tracked(fd, bytes, count, offset, real_pwrite64);
}

static int ftruncate_tracked(int fd, off_t length, int (*call)(int, off_t)) {
  int slot = slot_of(fd);
  if (slot < 0 || length < 0) return call(fd, length);
  pthread_mutex_lock(&lock);
  uint64_t size = file_size(fd);
  Record record = {.kind = 'T', .a = (uint64_t)length, .b = size};
  record.length = size > (uint64_t)length ? size - (uint64_t)length : 0;
  append_record(&inodes[slot], record, (uint64_t)length);
  int result = call(fd, length);
  int saved = errno;
  pthread_mutex_unlock(&lock);
  errno = saved;
  return result;
}

int ftruncate(int fd, off_t length) {
  resolve();
  return ftruncate_tracked(fd, length, real_ftruncate);
}

int ftruncate64(int fd, off_t length) {
  resolve();
  return ftruncate_tracked(fd, length, real_ftruncate64);
}

/* Keeps only the records after the cutoff: copies them to a fresh journal. Under lock. */
static void compact(Inode *inode) {
  char path[PATH_MAX], temporary[PATH_MAX];
  journal_path(path, inode->dev, inode->ino, "");
  journal_path(temporary, inode->dev, inode->ino, ".compact");
  int fresh = real_open(temporary, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (fresh < 0) die("cannot open a compacted journal");
  Record header = {.kind = 'B', .a = inode->synced - sizeof header};
  write_all(fresh, &header, sizeof header);
  uint64_t offset = inode->synced - inode->base;
  uint64_t kept = sizeof header;
  char chunk[COPY_CHUNK_BYTES];
  while (offset < inode->length) {
    uint64_t left = inode->length - offset;
    size_t count = left < sizeof chunk ? (size_t)left : sizeof chunk;
    read_all(inode->journal, chunk, count, offset);
    write_all(fresh, chunk, count);
    offset += count;
    kept += count;
  }
  if (rename(temporary, path) != 0) die("cannot replace a journal");
  real_close(inode->journal);
  inode->journal = fresh;
  inode->base = inode->synced - sizeof header;
  inode->length = kept;
}

/* Marks every record before `cutoff` durable. Under lock. */
static void mark_synced(Inode *inode, uint64_t cutoff) {
  if (cutoff <= inode->synced) return;
  if (inode->base + inode->length == cutoff) {
    restart_journal(inode, cutoff);
    return;
  }
  Record record = {.kind = 'S', .a = cutoff};
  write_all(inode->journal, &record, sizeof record);
  inode->length += sizeof record;
  inode->synced = cutoff;
  if (inode->length > COMPACT_BYTES) compact(inode);
}

static int sync_tracked(int fd, int (*call)(int)) {
  int slot = slot_of(fd);
  if (slot < 0) return call(fd);
  pthread_mutex_lock(&lock);
  Inode *inode = &inodes[slot];
  dev_t dev = inode->dev;
  ino_t ino = inode->ino;
  uint64_t cutoff = inode->base + inode->length;
  pthread_mutex_unlock(&lock);
  int result = call(fd);
  int saved = errno;
  if (result == 0) {
    pthread_mutex_lock(&lock);
    if (inode->used && inode->dev == dev && inode->ino == ino) mark_synced(inode, cutoff);
    pthread_mutex_unlock(&lock);
  }
  errno = saved;
  return result;
}

int fsync(int fd) {
  resolve();
  return sync_tracked(fd, real_fsync);
}

int fdatasync(int fd) {
  resolve();
  return sync_tracked(fd, real_fdatasync);
}

int close(int fd) {
  resolve();
  if (slot_of(fd) >= 0) {
    pthread_mutex_lock(&lock);
    detach(fd);
    pthread_mutex_unlock(&lock);
  }
  return real_close(fd);
}

/* Gives `copy` (a new fd of the same file as `fd`) the same tracking. Under lock. */
static void track_copy(int fd, int copy) {
  int slot = slot_of(fd);
  if (slot < 0 || copy < 0 || copy >= FDS_MAX || copy == fd) return;
  detach(copy);
  inodes[slot].refs++;
  attach(copy, slot, fd_append[fd]);
}

int dup(int fd) {
  resolve();
  if (slot_of(fd) < 0) return real_dup(fd);
  pthread_mutex_lock(&lock);
  int copy = real_dup(fd);
  int saved = errno;
  track_copy(fd, copy);
  pthread_mutex_unlock(&lock);
  errno = saved;
  return copy;
}

int dup2(int fd, int target) {
  resolve();
  if (slot_of(fd) < 0 && slot_of(target) < 0) return real_dup2(fd, target);
  pthread_mutex_lock(&lock);
  int copy = real_dup2(fd, target);
  int saved = errno;
  if (copy >= 0 && fd != target) {
    detach(target);
    track_copy(fd, copy);
  }
  pthread_mutex_unlock(&lock);
  errno = saved;
  return copy;
}

int dup3(int fd, int target, int flags) {
  resolve();
  if (slot_of(fd) < 0 && slot_of(target) < 0) return real_dup3(fd, target, flags);
  pthread_mutex_lock(&lock);
  int copy = real_dup3(fd, target, flags);
  int saved = errno;
  if (copy >= 0) {
    detach(target);
    track_copy(fd, copy);
  }
  pthread_mutex_unlock(&lock);
  errno = saved;
  return copy;
}

int fcntl(int fd, int command, ...) {
  resolve();
  va_list arguments;
  va_start(arguments, command);
  void *argument = va_arg(arguments, void *);
  va_end(arguments);
  int isDup = command == F_DUPFD || command == F_DUPFD_CLOEXEC;
  if (!isDup || slot_of(fd) < 0) return real_fcntl(fd, command, argument);
  pthread_mutex_lock(&lock);
  int copy = real_fcntl(fd, command, argument);
  int saved = errno;
  track_copy(fd, copy);
  pthread_mutex_unlock(&lock);
  errno = saved;
  return copy;
}

static void warn_mmap(int fd, int protection, int flags) {
  if (slot_of(fd) < 0 || !(protection & PROT_WRITE) || !(flags & MAP_SHARED)) return;
  static const char text[] = "power-loss shim: a shared writable mmap of a tracked file\n";
  real_write(2, text, sizeof text - 1);
}

void *mmap(void *address, size_t length, int protection, int flags, int fd, off_t offset) {
  resolve();
  warn_mmap(fd, protection, flags);
  return real_mmap(address, length, protection, flags, fd, offset);
}

void *mmap64(void *address, size_t length, int protection, int flags, int fd, off_t offset) {
  resolve();
  warn_mmap(fd, protection, flags);
  return real_mmap64(address, length, protection, flags, fd, offset);
}
