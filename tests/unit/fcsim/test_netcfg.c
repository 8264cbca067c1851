/* Tests tools/fcsim/netcfg.c: the ip= boot argument parser. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "netcfg.h"

Test(fcsim_netcfg, parses_the_driver_ip_argument)
{
        struct fcsim_ipcfg ip;
        struct ha_err err;
        cr_assert_eq(fcsim_ipcfg_parse("console=ttyS0 ip=169.254.0.21::169.254.0.22:255.255.255.252::eth0:off "
                                       "reboot=k", &ip, &err), 0);
        cr_assert(ip.present);
        cr_assert_str_eq(inet_ntoa(ip.client), "169.254.0.21");
        cr_assert_str_eq(inet_ntoa(ip.gateway), "169.254.0.22");
        cr_assert_str_eq(inet_ntoa(ip.netmask), "255.255.255.252");
        cr_assert_str_eq(ip.dev, "eth0");
        cr_assert_str_eq(ip.hostname, "");
}

Test(fcsim_netcfg, absent_dhcp_and_bad_arguments)
{
        struct fcsim_ipcfg ip;
        struct ha_err err;
        cr_assert_eq(fcsim_ipcfg_parse("reboot=k panic=1", &ip, &err), 0);
        cr_assert_not(ip.present);
        cr_assert_eq(fcsim_ipcfg_parse("ip=dhcp", &ip, &err), 0);
        cr_assert_not(ip.present);
        cr_assert_eq(fcsim_ipcfg_parse("ip=10.0.0.300::10.0.0.1:255.0.0.0::eth0:off", &ip, &err), -EINVAL);
        cr_assert_eq(fcsim_ipcfg_parse("ip=10.0.0.2:::255.0.0.0:myhost:eth1:off", &ip, &err), 0);
        cr_assert_str_eq(ip.hostname, "myhost");
        cr_assert_str_eq(ip.dev, "eth1");
        cr_assert_eq(ip.gateway.s_addr, 0);
}
