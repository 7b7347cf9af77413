# cmake -DIN=FILE -DOUT=FILE.cc -DNAME=symbol -P embed_blob.cmake: writes a C++ source that holds
# FILE's bytes as `extern const unsigned char NAME[]` and `extern const unsigned long NAME_size`
# (the exec stub built by the host compiler, embedded in strata_oci).
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR size "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE ${OUT}.tmp "// Generated from ${IN} by src/oci/embed_blob.cmake: do not edit.\n"
  "namespace strata::oci {\n"
  "extern const unsigned char ${NAME}[] = {\n${bytes}\n};\n"
  "extern const unsigned long ${NAME}_size = ${size};\n"
  "}  // namespace strata::oci\n")
file(RENAME ${OUT}.tmp ${OUT})
