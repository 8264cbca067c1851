/*
 * codec_json_int.h - what the JSON encoder and decoder share: recognising
 * the well-known types with a special JSON form, and the storage size of a
 * field value in a protobuf-c struct. Only codec_json_*.c include this.
 */
#ifndef RPC_CODEC_JSON_INT_H
#define RPC_CODEC_JSON_INT_H

#include <stdbool.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

enum cj_wkt {
        CJ_WKT_NONE,
        CJ_WKT_TIMESTAMP,
        CJ_WKT_DURATION,
        CJ_WKT_ANY,
};

static inline enum cj_wkt cj_wkt_of(const ProtobufCMessageDescriptor *d)
{
        const char *n = d->name;
        if (strncmp(n, "google.protobuf.", 16) != 0)
                return CJ_WKT_NONE;
        n += 16;
        if (strcmp(n, "Timestamp") == 0)
                return CJ_WKT_TIMESTAMP;
        if (strcmp(n, "Duration") == 0)
                return CJ_WKT_DURATION;
        if (strcmp(n, "Any") == 0)
                return CJ_WKT_ANY;
        return CJ_WKT_NONE;
}

/* Bytes one value of |f| occupies in a message struct or repeated array. */
static inline size_t cj_value_size(const ProtobufCFieldDescriptor *f)
{
        switch (f->type) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
                return 4;
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
                return 8;
        case PROTOBUF_C_TYPE_FLOAT:
                return sizeof(float);
        case PROTOBUF_C_TYPE_DOUBLE:
                return sizeof(double);
        case PROTOBUF_C_TYPE_BOOL:
                return sizeof(protobuf_c_boolean);
        case PROTOBUF_C_TYPE_ENUM:
                return sizeof(int);
        case PROTOBUF_C_TYPE_STRING:
                return sizeof(char *);
        case PROTOBUF_C_TYPE_BYTES:
                return sizeof(ProtobufCBinaryData);
        case PROTOBUF_C_TYPE_MESSAGE:
                return sizeof(ProtobufCMessage *);
        }
        return 0;
}

/* The address of the member at byte offset |off| of message |msg|. */
#define CJ_MEMBER(msg, off) ((void *)((char *)(msg) + (off)))

#endif
