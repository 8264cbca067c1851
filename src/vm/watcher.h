/*
 * watcher.h - one thread that notices VMM exits, for every VM of the agent.
 *
 * The thread sleeps in epoll_wait over the pidfds of the watched processes
 * (a pidfd turns readable when its process ends), so an exit is seen at
 * once, there is no SIGCHLD handler, and a recycled pid can never be
 * mistaken for the VMM. Each registration fires once: its function runs on
 * the watcher thread, then the registration is dropped.
 *
 * Most callers use it through vm.h: pass the watcher in vm_config and an
 * on_exit callback in vm_spec. vm_watcher_add/del are the generic layer.
 */
#ifndef HA_VM_WATCHER_H
#define HA_VM_WATCHER_H

#include <stdint.h>

typedef struct vm_watcher vm_watcher;

/* Starts the thread. Returns 0, -ENOMEM, -EMFILE or another -errno. */
int vm_watcher_new(vm_watcher **ret);
/* Stops and joins the thread; pending registrations are dropped without
 * firing. Must not be called from a fire function. NULL is a no-op. */
void vm_watcher_free(vm_watcher *w);

/* Calls fire(arg) on the watcher thread once the process of |pidfd| ends.
 * |pidfd| is duplicated: the caller keeps and may close its own. Returns 0
 * with a key for vm_watcher_del, or -errno. */
int vm_watcher_add(vm_watcher *w, int pidfd, void (*fire)(void *arg), void *arg,
                   uint64_t *ret_key);
/* Cancels a registration. When it returns, fire for |key| is neither running
 * nor going to run (it waits for a fire in progress, except when called from
 * that very fire function). Unknown or already fired keys are a no-op. */
void vm_watcher_del(vm_watcher *w, uint64_t key);

#endif
