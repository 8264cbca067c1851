/*
 * proc.c - the backend helpers of backend.h for process identity; the
 * work is core/proc.c's (shared with the VM driver).
 */
#include "core/proc.h"
#include "sandbox/backend.h"

int sbx_proc_start_time(int pid, uint64_t *ret_start_time)
{
        return ha_proc_start_time(pid, ret_start_time);
}

bool sbx_proc_alive(int pid, uint64_t start_time)
{
        return ha_proc_alive(pid, start_time);
}
