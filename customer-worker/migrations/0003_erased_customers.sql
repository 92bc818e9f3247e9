-- Customers erased on request (`customer.deleted`). Only a SHA-256 digest of
-- the id is kept, enough to recognise (and drop) a later event for them
-- without keeping the id itself. Never deleted by the cleanup job: an
-- erasure must outlive any redelivery.
CREATE TABLE erased_customers (
    id_digest TEXT   PRIMARY KEY,
    erased_at BIGINT NOT NULL
);
