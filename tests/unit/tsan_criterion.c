/* Lets Criterion start under ThreadSanitizer. Linked into every unit test
 * only when HA_SANITIZE=thread (tests/unit/CMakeLists.txt via ha_unit_tests).
 *
 * Criterion runs each test in a BoxFort sandbox and shares state with it
 * through an "inheritable arena": bxf_arena_init() picks a random 16 MiB slot
 * between 0x200000000000 and 0x5fffff000000 (base + (rand_r() & 0x3fffff)
 * << 24), checks with mincore() that the slot is free, and maps a shm file
 * there with MAP_FIXED, giving up after 10 tries ("Could not initialize
 * inheritable arena", Snaipe/Criterion#274). Under TSan that whole span is
 * shadow, metadata or protected gaps, except the application window
 * 0x550000000000-0x568000000000 where TSan expects PIE binaries: nearly every
 * slot is taken and TSan refuses MAP_FIXED outside application memory.
 *
 * BoxFort (statically inside libcriterion.so) calls rand_r() through the
 * PLT, so this definition in the executable wins. Calls made from
 * libcriterion get a number whose slot lies in that application window; every
 * other caller gets libc's rand_r() unchanged. BoxFort still checks the slot
 * with mincore() and retries, so a slot already used by the binary or its
 * heap is skipped as before. The child inherits the arena at the same
 * address, which is application memory in its TSan layout too.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

/* BoxFort: base 0x200000000000, slot size 1 << 24. TSan x86_64 application
 * window for PIE binaries: [0x550000000000, 0x568000000000). */
#define SLOT_FIRST ((0x550000000000UL - 0x200000000000UL) >> 24)
#define SLOT_END ((0x568000000000UL - 0x200000000000UL) >> 24)

int rand_r(unsigned int *seed);

static int from_criterion(const void *ret)
{
        Dl_info info;

        return dladdr(ret, &info) && info.dli_fname && strstr(info.dli_fname, "libcriterion");
}

int rand_r(unsigned int *seed)
{
        static int (*real)(unsigned int *);

        if (!real)
                real = (int (*)(unsigned int *))dlsym(RTLD_NEXT, "rand_r");
        int r = real(seed);

        if (from_criterion(__builtin_return_address(0)))
                r = (int)(SLOT_FIRST + (unsigned int)r % (SLOT_END - SLOT_FIRST));
        return r;
}

/* Some tests fork a child "agent" from a multi-threaded test process and let
 * it start threads before it is killed (sandbox/test_recover). TSan refuses
 * that by default (die_after_fork=1); the child runs only our code and is
 * SIGKILLed, so let it. TSAN_OPTIONS adds to and overrides these. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
        return "die_after_fork=0";
}
