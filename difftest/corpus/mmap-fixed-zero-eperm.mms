# Below mmap_min_addr without CAP_SYS_RAWIO: EPERM.
mmap 0 1p rw private|anonymous|fixed              => EPERM
mmap 0 1p rw private|anonymous|fixed_noreplace    => EPERM
