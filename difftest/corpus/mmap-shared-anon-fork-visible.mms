a = mmap 0 1p rw shared|anonymous
write $a 1p 0x10
fork {
  write $a 4 0x20
}
read $a 8
