/* main.c - the hostagent daemon. Everything happens in service/daemon.c. */
#include "service/daemon.h"

int main(int argc, char **argv)
{
        return ha_daemon_main(argc, argv, NULL);
}
