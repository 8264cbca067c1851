/*
 * loopdev.c - see loopdev.h. LOOP_CONFIGURE (Linux 5.8) sets the backing
 * file and the flags in one ioctl, so there is no window where the device
 * is bound but not yet autoclear; LOOP_SET_FD + LOOP_SET_STATUS64 is the
 * fallback for older kernels.
 */
#include "loopdev.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* Another process may take the free device between GET_FREE and
 * CONFIGURE (-EBUSY). Concurrent attachers are all handed the same free
 * number and only one wins per round, so the tries must outnumber them:
 * 32 concurrent creates (bench/sandbox.py) plus other agents on the host
 * exhausted 16. A pause of up to LOOP_RETRY_PAUSE_US after a lost round
 * spreads the contenders out. */
#define LOOP_ATTACH_TRIES 256
#define LOOP_RETRY_PAUSE_US 1000

static int configure(int loop_fd, int file_fd, bool ro, const char *image)
{
        struct loop_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.fd = (unsigned)file_fd;
        cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR | (ro ? LO_FLAGS_READ_ONLY : 0);
        snprintf((char *)cfg.info.lo_file_name, sizeof cfg.info.lo_file_name, "%s", image);
        if (ioctl(loop_fd, LOOP_CONFIGURE, &cfg) == 0)
                return 0;
        int r = -errno;
        if (r != -EINVAL && r != -ENOTTY)
                return r;
        if (ioctl(loop_fd, LOOP_SET_FD, file_fd) < 0)
                return -errno;
        if (ioctl(loop_fd, LOOP_SET_STATUS64, &cfg.info) < 0) {
                r = -errno;
                ioctl(loop_fd, LOOP_CLR_FD, 0);
                return r;
        }
        return 0;
}

int fcsim_loop_attach(const char *image, bool ro, int *ret_fd, char ret_path[FCSIM_LOOP_PATH_MAX],
                      struct ha_err *err)
{
        int r;
        int file_fd = open(image, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
        if (file_fd < 0) {
                r = -errno;
                return ha_err_set(err, r, "cannot open drive image %s: %s", image, strerror(-r));
        }
        int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        if (ctl < 0) {
                r = -errno;
                ha_err_set(err, r, "cannot open /dev/loop-control: %s", strerror(-r));
                goto out_close_file;
        }
        r = -EBUSY;
        for (int i = 0; i < LOOP_ATTACH_TRIES && r == -EBUSY; i++) {
                int n = ioctl(ctl, LOOP_CTL_GET_FREE);
                if (n < 0) {
                        r = -errno;
                        ha_err_set(err, r, "no free loop device: %s", strerror(-r));
                        goto out_close_ctl;
                }
                char path[FCSIM_LOOP_PATH_MAX];
                snprintf(path, sizeof path, "/dev/loop%d", n);
                int loop_fd = open(path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
                if (loop_fd < 0) {
                        r = -errno;
                        ha_err_set(err, r, "cannot open %s: %s", path, strerror(-r));
                        goto out_close_ctl;
                }
                r = configure(loop_fd, file_fd, ro, image);
                if (r == 0) {
                        *ret_fd = loop_fd;
                        memcpy(ret_path, path, sizeof path);
                        break;
                }
                close(loop_fd);
                if (r != -EBUSY)
                        ha_err_set(err, r, "cannot attach %s to %s: %s", image, path, strerror(-r));
                else
                        usleep((useconds_t)(((unsigned)getpid() * 7919u + (unsigned)i * 104729u) %
                                            LOOP_RETRY_PAUSE_US));
        }
        if (r == -EBUSY)
                ha_err_set(err, r, "cannot attach %s: every free loop device was taken", image);
out_close_ctl:
        close(ctl);
out_close_file:
        /* The loop device holds its own reference to the file. */
        close(file_fd);
        return r;
}
