a = mmap 0 1p rw private|anonymous
write $a 1p 0x24
madvise $a 1p wipeonfork
madvise $a 1p keeponfork   => ok
fork {
  read $a 2
}
