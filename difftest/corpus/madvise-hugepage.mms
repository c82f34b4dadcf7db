a = mmap 0 4m rw private|anonymous
madvise $a 4m hugepage
maps
madvise $a 4m nohugepage
maps
