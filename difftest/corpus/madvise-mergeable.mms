a = mmap 0 4p rw private|anonymous
madvise $a 4p mergeable
madvise $a 4p unmergeable
maps
