/*
 * passwd.c - user lookup from /etc/passwd and /etc/group, parsed by hand:
 * the agent is a static binary, and glibc's getpwnam() in a static binary
 * wants NSS modules that the image does not have.
 *
 * Lines are read with a bounded buffer; an over-long or malformed line is
 * skipped rather than trusted.
 */
#include "ga.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_LEN 1024

/* Parses a decimal id < 2^32-1. Returns 0 or -EINVAL. */
static int parse_id(const char *s, unsigned long *ret)
{
        unsigned long v = 0;

        if (!*s)
                return -EINVAL;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned long)(*s - '0');
                if (v >= 0xffffffffUL)
                        return -EINVAL;
        }
        *ret = v;
        return 0;
}

/* Splits |line| at ':' into at most |max| fields; returns the count. */
static size_t split(char *line, char **f, size_t max)
{
        size_t n = 0;

        line[strcspn(line, "\n")] = '\0';
        f[n++] = line;
        while (n < max) {
                char *c = strchr(f[n - 1], ':');

                if (!c)
                        break;
                *c = '\0';
                f[n++] = c + 1;
        }
        return n;
}

/* Reads the next whole line into |buf|; lines longer than the buffer are
 * skipped entirely. Returns true, or false at end of file. */
static bool read_line(FILE *f, char *buf, size_t cap)
{
        bool skipping = false;

        while (fgets(buf, (int)cap, f)) {
                bool whole = strchr(buf, '\n') || feof(f);

                if (skipping || !whole) {
                        skipping = !whole;
                        continue;
                }
                return true;
        }
        return false;
}

static bool name_in_list(char *list, const char *name)
{
        for (char *save = NULL, *m = strtok_r(list, ",", &save); m; m = strtok_r(NULL, ",", &save))
                if (strcmp(m, name) == 0)
                        return true;
        return false;
}

static void add_groups(const char *group_path, const char *name, struct ga_user *u)
{
        char line[LINE_MAX_LEN];
        FILE *f = fopen(group_path, "re");

        if (!f)
                return;
        while (read_line(f, line, sizeof line)) {
                char *fld[4];
                unsigned long gid;

                if (split(line, fld, 4) != 4 || parse_id(fld[2], &gid) < 0)
                        continue;
                if ((gid_t)gid == u->gid || !name_in_list(fld[3], name))
                        continue;
                if (u->n_groups < GA_GROUPS_MAX)
                        u->groups[u->n_groups++] = (gid_t)gid;
        }
        fclose(f);
}

int ga_user_lookup(const char *name, const char *passwd_path, const char *group_path,
                   struct ga_user *ret)
{
        char line[LINE_MAX_LEN];
        unsigned long want_uid = 0;
        bool numeric = parse_id(name, &want_uid) == 0;
        struct ga_user u;
        bool found = false;
        FILE *f;
        int r;

        if (!*name || strchr(name, ':') || strchr(name, '\n'))
                return -EINVAL;
        memset(&u, 0, sizeof u);
        f = fopen(passwd_path, "re");
        if (!f) {
                r = -errno;
                if (!(numeric && r == -ENOENT))
                        return r;
        }
        while (f && read_line(f, line, sizeof line)) {
                char *fld[7];
                unsigned long uid, gid;

                if (split(line, fld, 7) != 7 || parse_id(fld[2], &uid) < 0 || parse_id(fld[3], &gid) < 0)
                        continue;
                if (numeric ? uid != want_uid : strcmp(fld[0], name) != 0)
                        continue;
                u.uid = (uid_t)uid;
                u.gid = (gid_t)gid;
                if (strlen(fld[5]) >= sizeof u.home)
                        continue;
                memcpy(u.home, fld[5], strlen(fld[5]) + 1);
                add_groups(group_path, fld[0], &u);
                found = true;
                break;
        }
        if (f)
                fclose(f);
        if (!found) {
                if (!numeric)
                        return -ENOENT;
                u.uid = (uid_t)want_uid;
                u.gid = (gid_t)want_uid;
                memcpy(u.home, "/", 2);
        }
        *ret = u;
        return 0;
}
