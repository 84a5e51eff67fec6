//! APISIX v3 compatible Admin API service and config stores.
