#include <criterion/criterion.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/workq.h"

struct count_job {
        struct ha_job job;
        atomic_int *counter;
};

static void count_run(struct ha_job *j)
{
        struct count_job *c = (struct count_job *)j;
        atomic_fetch_add(c->counter, 1);
        free(c);
}

Test(ha_workq, runs_every_job_before_free)
{
        atomic_int n = 0;
        ha_workq *q = ha_workq_new(2, 4, 10000);
        cr_assert_not_null(q);
        for (int i = 0; i < 5000; i++) {
                struct count_job *c = calloc(1, sizeof *c);
                c->job.run = count_run;
                c->counter = &n;
                cr_assert_eq(ha_workq_push(q, &c->job), 0);
        }
        ha_workq_free(q);
        cr_assert_eq(atomic_load(&n), 5000);
}

struct block_job {
        struct ha_job job;
        atomic_int *release;
        atomic_int *started;
};

static void block_run(struct ha_job *j)
{
        struct block_job *b = (struct block_job *)j;
        atomic_fetch_add(b->started, 1);
        while (!atomic_load(b->release))
                usleep(1000);
        free(b);
}

Test(ha_workq, grows_past_blocked_threads_up_to_max_then_rejects_when_full)
{
        atomic_int release = 0, started = 0;
        ha_workq *q = ha_workq_new(1, 3, 2);
        for (int i = 0; i < 3; i++) {
                struct block_job *b = calloc(1, sizeof *b);
                b->job.run = block_run;
                b->release = &release;
                b->started = &started;
                cr_assert_eq(ha_workq_push(q, &b->job), 0);
                for (int k = 0; k < 1000 && atomic_load(&started) < i + 1; k++)
                        usleep(1000);
        }
        cr_assert_eq(atomic_load(&started), 3, "three blocking jobs run at once on a grown pool");
        struct ha_workq_stats st;
        ha_workq_stats(q, &st);
        cr_assert_eq(st.threads, 3);
        /* All threads busy: two more wait, the next one is refused. */
        struct block_job *w[3];
        for (int i = 0; i < 3; i++) {
                w[i] = calloc(1, sizeof *w[i]);
                w[i]->job.run = block_run;
                w[i]->release = &release;
                w[i]->started = &started;
        }
        cr_assert_eq(ha_workq_push(q, &w[0]->job), 0);
        cr_assert_eq(ha_workq_push(q, &w[1]->job), 0);
        cr_assert_eq(ha_workq_push(q, &w[2]->job), -EAGAIN);
        free(w[2]);
        atomic_store(&release, 1);
        ha_workq_free(q);
        cr_assert_eq(atomic_load(&started), 5);
}
