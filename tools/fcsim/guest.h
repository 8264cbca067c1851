/*
 * guest.h - booting the configured root drive as a namespaced "guest".
 *
 * InstanceStart clones a child into new PID, mount, UTS, IPC and network
 * namespaces. The child mounts the root image (attached to an autoclear
 * loop device, see loopdev.h), gives it /dev, /proc, /sys and a vsock
 * directory, creates the guest's TAP interfaces in its network namespace
 * (configured from the `ip=` boot argument), pivot_roots into the image and
 * execs its /sbin/init as PID 1 with
 *   HA_BOOT_ARGS=<boot_args>   and, with a vsock device,
 *   HA_VSOCK_UNIX_DIR=/.vsock  (or /dev/.vsock when the root is read-only
 *                               and has no /.vsock directory).
 * The guest joins cgroups that apply the vCPU and memory limits and the
 * freezer used for pause.
 *
 * Lifetime: the child has PR_SET_PDEATHSIG(SIGKILL), so it dies with fcsim
 * however fcsim dies; its death empties the PID namespace, which drops the
 * mount namespace, which unmounts the image, which releases the loop
 * device. Only the (empty) cgroup directories can outlive a SIGKILLed
 * fcsim; see cgroup.h.
 */
#ifndef FCSIM_GUEST_H
#define FCSIM_GUEST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cgroup.h"
#include "core/err.h"
#include "fcsim.h"
#include "netcfg.h"

struct fcsim_guest_spec {
        const char *id;    /* instance id: hostname fallback, cgroup name */
        const char *image; /* root drive path_on_host */
        bool read_only;
        const char *boot_args; /* "" when none */
        unsigned vcpus, mem_mib;
        bool vsock; /* give the guest a vsock directory */
        unsigned n_nets;
        const struct fcsim_net *nets; /* guest_mac and mtu per interface */
};

struct fcsim_guest {
        pid_t pid; /* in fcsim's PID namespace */
        int pidfd; /* readable when the guest's init exits */
        struct fcsim_cgroup cg;
        int tap_fds[FCSIM_MAX_NETS]; /* guest-side TAPs; ownership moves to the relay */
        unsigned n_taps;
        char vsock_dir[64];       /* host path of the guest's vsock directory */
        char vsock_guest_dir[16]; /* the same directory as the guest sees it */
        uint64_t boot_us;         /* InstanceStart to init exec'd */
        /* Where boot_us went: cgroups, loop attach, clone to "set up"
         * (namespaces, network, mounts, pivot_root), then exec. */
        uint64_t cgroup_us, loop_us, setup_us, exec_us;
};

/* Boots the guest. Returns 0 with |g| filled, or -errno with a message;
 * on failure nothing is left (no process, loop device, cgroup, fd). */
int fcsim_guest_boot(const struct fcsim_guest_spec *spec, struct fcsim_guest *g,
                     struct ha_err *err);
/* Sends |sig| to the guest's init. Returns 0 or -errno. */
int fcsim_guest_signal(struct fcsim_guest *g, int sig);
/* Reaps the guest after its pidfd became readable; returns its wait
 * status and removes the cgroups. */
int fcsim_guest_reap(struct fcsim_guest *g);
/* Kills the guest (thawing it first: a frozen task cannot die), reaps it
 * and removes the cgroups. Safe on a guest already reaped. */
void fcsim_guest_kill(struct fcsim_guest *g);

#endif
