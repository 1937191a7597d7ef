-- CRLs are DER (dense, mostly incompressible serials and signatures) and a full one for a
-- large CA runs to tens of megabytes: TOAST keeps them out of line without trying to
-- compress them, which halved the time to store a million-entry CRL (docs/performance.md).
ALTER TABLE crls ALTER COLUMN der SET STORAGE EXTERNAL;
