a = mmap 0 2m rw private|anonymous
madvise $a 2m collapse
maps
