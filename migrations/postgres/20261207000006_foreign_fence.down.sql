DROP FUNCTION IF EXISTS flashcore_fence_foreign(INTEGER[], BIGINT[], TEXT[], BIGINT[], BIGINT[]);
