# The child sees MADV_WIPEONFORK memory zeroed; the parent keeps its data.
a = mmap 0 2p rw private|anonymous
write $a 2p 0x23
madvise $a 1p wipeonfork   => ok
fork {
  read $a 2
  read $a+1p 2
}
read $a 2
maps
