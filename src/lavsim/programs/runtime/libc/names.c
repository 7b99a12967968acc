/* The name server from C (kernel/nameserver.s, port 0): one 60-byte request per call
   (NS_REQ_*: op, name length, name, value, offset, group, host, flags), the reply a status
   then the port number or the 20-byte address structure. */
#include <lavender.h>
#include <string.h>

struct lav_ns_request {
    int op, name_len;
    char name[LAV_NS_NAME_MAX];
    unsigned int value, offset, group, host, flags;
};
struct lav_ns_reply { int status; struct lav_address address; };

static int ns_call(int op, const char *name, const struct lav_address *a,
                   struct lav_ns_reply *reply) {
    struct lav_ns_request req;
    int len = (int)strlen(name);
    if (len > LAV_NS_NAME_MAX) return LAV_E_INVAL;
    memset(&req, 0, sizeof req);
    req.op = op;
    req.name_len = len;
    memcpy(req.name, name, (size_t)len);
    if (a) {
        req.value = a->selector;
        req.offset = a->offset;
        req.group = a->group;
        req.host = a->host;
        req.flags = a->flags;
    }
    int n = lav_call(LAV_NS_PORT, &req, sizeof req, reply, sizeof *reply);
    if (n < 0) return n;
    if (n < 4) return LAV_E_INVAL;
    return reply->status;
}

int lav_port_lookup(const char *name) {
    struct lav_ns_reply reply;
    int status = ns_call(3, name, 0, &reply);
    return status < 0 ? status : (int)reply.address.host;  /* the port follows the status */
}

int lav_proc_register(const char *name, const struct lav_address *a) {
    struct lav_ns_reply reply;
    return ns_call(4, name, a, &reply);
}

int lav_proc_lookup(const char *name, struct lav_address *out) {
    struct lav_ns_reply reply;
    int status = ns_call(5, name, 0, &reply);
    if (status == 0) *out = reply.address;
    return status;
}

int lav_proc_unregister(const char *name, unsigned int group) {
    struct lav_ns_reply reply;
    struct lav_address a = {0, group, 0, 0, 0};
    return ns_call(6, name, &a, &reply);
}
