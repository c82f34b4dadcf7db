# MADV_HWPOISON and MADV_SOFT_OFFLINE need CAP_SYS_ADMIN (EPERM), or the
# kernel lacks CONFIG_MEMORY_FAILURE (EINVAL).
a = mmap 0 1p rw private|anonymous
write $a 1 0x1
madvise $a 1p hwpoison
madvise $a 1p soft_offline
